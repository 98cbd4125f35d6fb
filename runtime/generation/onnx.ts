// A StepModel over an artifact's decoder.onnx (docs/architecture.md, "decoder.onnx"): feeds
// exactly the inputs the manifest's `decoder.inputs` lists, starts from empty past.* tensors,
// turns present.* into the next step's past.*, sends the visual prefix once (prefill) and an empty
// one afterwards, keeps the attention mask over past + prefix + current positions, computes
// position_ids when the graph takes them, and reorders the past K/V on the host for beam search
// (or, when the session keeps present.* on the WebGPU device, on the device: deviceRows.ts).
// The encoder-side tensors (cross.*, cross_attention_mask) stay one row per image: a decoder
// compiled with `cross_rows: 'grouped'` takes them as they are while the rows of each image are
// contiguous (beams, returned sequences); older artifacts get them expanded to the beams once. The
// per-step reorders never copy them (beams of image b read image b's rows).
import * as ort from 'onnxruntime-node';
import type { DecoderFacts } from '../../src/artifact/manifest.js';
import { BlipRuntimeError, oneLine } from '../errors.js';
import type { StepInput, StepModel, StepOutput } from './types.js';
import type { DeviceRowGather } from './deviceRows.js';
import { LOOP, isLoopName } from './greedyLoop.js';

/** What the runtime needs of a session (an ort.InferenceSession, or a stand-in in tests). */
export interface DecoderSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
}

/** The manifest's decoder facts this model uses. */
export type DecoderFactsLike = Pick<DecoderFacts, 'layers' | 'kv_heads' | 'head_dim' | 'vocab_size' | 'inputs' | 'from_encode' | 'positions' | 'cross_rows'>;

export interface OnnxDecoderOptions {
  session: DecoderSession;
  decoder: DecoderFactsLike;
  /** encode.onnx outputs for the prompt batch (row b = prompt row b): cross.*, cross_attention_mask, prefix_embeds. */
  encoded?: Record<string, ort.Tensor>;
  /**
   * Decoder-only models with a visual prefix (prefix_embeds, Q positions). `placeholders`: the
   * prompt starts with Q `<image>` ids that the prefix replaces (transformers 5 processors); else
   * the prefix goes in front of the prompt and Q ones are added in front of its mask (older
   * checkpoints). `length`: the Q the inputs were built for (the manifest's), which prefix_embeds
   * must have: a prompt built for another Q would lose ids, or positions, without a word.
   */
  prefix?: { placeholders: boolean; length?: number };
  /**
   * Text fed at prefill when the generation loop's prompt is empty (older BLIP-2 checkpoints:
   * transformers generates from inputs_embeds only, so its sequences hold the new tokens alone).
   */
  prefillText?: { inputIds: number[][]; attentionMask?: number[][] };
  /**
   * Reorders a KV cache that stays on the WebGPU device (the session keeps present.* as
   * 'gpu-buffer'): beam search's row gathers then run on the device, before the next step.
   */
  deviceRows?: DeviceRowGather;
}

export interface DecoderState {
  rows: number;
  past: Record<string, ort.Tensor>;
  /**
   * from_encode tensors other than the prefix (cross.*, cross_attention_mask) as fed: `base` itself
   * (a grouped decoder, rows of one image contiguous), or one row per batch row, row i being row
   * origin[i] of `base`. Never gathered from itself: a reorder that keeps every
   * row on its image (beam search, after the expansion) keeps these very tensors, so states share
   * them (and `past`, after an identity reorder): releasing a state must not release these.
   */
  fixed: Record<string, ort.Tensor>;
  /** The encoded rows as encode.onnx gave them, one per image / prompt row (shared, never copied). */
  base: Record<string, ort.Tensor>;
  /** For each row, the encoded row (image) it reads. */
  origin: number[];
  /** The attention mask decoder.onnx has seen, one row per batch row. */
  mask: number[][];
  /** Last position id of each row (positions: 'input'). */
  lastPosition: number[];
  /**
   * A device-resident `past` not yet reordered: row i of this state is row pending[i] of `past`
   * (gathered on the device at the next step). Undefined: `past` is in row order.
   */
  pending?: number[];
}

/** gpu-buffer tensors already released (a tensor may be reachable from more than one state). */
const released = new WeakSet<ort.Tensor>();
function releaseDevice(r: Record<string, ort.Tensor>): void {
  for (const t of Object.values(r)) {
    if (t.location !== 'gpu-buffer' || released.has(t)) continue;
    released.add(t);
    t.dispose();
  }
}

function gatherRows(t: ort.Tensor, rows: number[]): ort.Tensor {
  if (t.location !== 'cpu' && t.location !== undefined) {
    throw new BlipRuntimeError('BLIP5043', `cannot reorder a ${t.location} tensor on the host; keep decoder outputs on the CPU for beam search`);
  }
  const n = t.dims[0];
  type Typed = { length: number; subarray(a: number, b: number): Typed; set(a: Typed, o: number): void; constructor: new (n: number) => Typed };
  const data = t.data as unknown as Typed;
  if (Array.isArray(t.data)) throw new BlipRuntimeError('BLIP5031', `reorder: string tensors are not supported`);
  const per = n === 0 ? 0 : data.length / n;
  const out = new data.constructor(rows.length * per);
  rows.forEach((r, i) => {
    if (r < 0 || r >= n) throw new BlipRuntimeError('BLIP5031', `reorder: row ${r} of ${n}`);
    out.set(data.subarray(r * per, (r + 1) * per), i * per);
  });
  return new ort.Tensor(t.type as 'float32', out as unknown as Float32Array, [rows.length, ...t.dims.slice(1)]);
}

/** Every tensor of `r` gathered to rows `idx`. */
const gatherAll = (r: Record<string, ort.Tensor>, idx: number[]): Record<string, ort.Tensor> => Object.fromEntries(Object.entries(r).map(([k, t]) => [k, gatherRows(t, idx)]));

const i64 = (rows: number[][]): ort.Tensor => {
  const s = rows[0]?.length ?? 0;
  const d = new BigInt64Array(rows.length * s);
  rows.forEach((r, i) => r.forEach((v, j) => (d[i * s + j] = BigInt(v))));
  return new ort.Tensor('int64', d, [rows.length, s]);
};

export class OnnxDecoderStepModel implements StepModel<DecoderState> {
  private readonly inputs: Set<string>;
  private readonly loop: boolean;
  private logitsWidth = 0;
  private readonly prefixWidth: number;
  private readonly prefixLength: number;

  constructor(private readonly o: OnnxDecoderOptions) {
    const d = o.decoder;
    this.inputs = new Set(d.inputs);
    this.loop = o.session.inputNames.includes(LOOP.maxSteps);
    if (this.loop) this.greedy = this.greedyInGraph.bind(this);
    const declared = o.session.inputNames.filter((n) => !isLoopName(n));
    const want = [...d.inputs];
    if (declared.length !== want.length || declared.some((n) => !this.inputs.has(n))) {
      throw new BlipRuntimeError('BLIP5044', `decoder.onnx declares inputs [${declared.join(', ')}] but the manifest lists [${want.join(', ')}]; recompile the model`);
    }
    const known = /^(input_ids|attention_mask|position_ids|prefix_embeds|past\.\d+\.(key|value)|cross\.\d+\.(key|value)|cross_attention_mask)$/;
    const unknown = want.filter((n) => !known.test(n) && !d.from_encode.includes(n));
    if (unknown.length) throw new BlipRuntimeError('BLIP5044', `decoder.onnx takes inputs the runtime cannot supply: ${unknown.join(', ')}`);
    for (const n of d.from_encode) {
      if (this.inputs.has(n) && !o.encoded?.[n]) throw new BlipRuntimeError('BLIP5044', `decoder.onnx needs ${n} from encode.onnx, which was not given`);
    }
    if (!o.session.outputNames.includes('logits')) throw new BlipRuntimeError('BLIP5044', 'decoder.onnx has no logits output');
    const prefix = o.encoded?.prefix_embeds;
    if (this.inputs.has('prefix_embeds')) {
      if (!prefix || prefix.dims.length !== 3) throw new BlipRuntimeError('BLIP5044', 'decoder.onnx takes prefix_embeds but encode.onnx gave none (B, Q, H)');
      this.prefixLength = prefix.dims[1];
      this.prefixWidth = prefix.dims[2];
      const built = o.prefix?.length;
      if (built !== undefined && built !== this.prefixLength) {
        throw new BlipRuntimeError(
          'BLIP5044',
          `encode.onnx gives a visual prefix of ${this.prefixLength} positions, but the prompt was built for ${built}${o.prefix!.placeholders ? ' <image> placeholders' : ''} (the manifest's text.prefix_length, or num_query_tokens in artifacts compiled before it was recorded); recompile the model`,
        );
      }
    } else {
      this.prefixLength = 0;
      this.prefixWidth = 0;
    }
  }

  private emptyPast(rows: number): Record<string, ort.Tensor> {
    const d = this.o.decoder;
    const past: Record<string, ort.Tensor> = {};
    for (const n of d.inputs) if (n.startsWith('past.')) past[n] = new ort.Tensor('float32', new Float32Array(0), [rows, d.kv_heads, 0, d.head_dim]);
    return past;
  }

  /**
   * Greedy steps in the graph (StepModel.greedy): set when decoder.onnx is the greedy-loop form (greedyLoop.ts).
   * (NonNullable: StepModel['greedy'] includes undefined, and under a consumer's
   * exactOptionalPropertyTypes a property that may hold undefined does not implement an optional
   * method: TS2420 in the published .d.ts.)
   */
  readonly greedy?: NonNullable<StepModel<DecoderState>['greedy']>;

  step(input: StepInput, state: DecoderState | undefined): Promise<StepOutput<DecoderState>> {
    return this.run(input, state).then((r) => r.out);
  }

  /**
   * Greedy decoding in the graph: feeds `tokens` (one per row) and lets decoder.onnx choose up to
   * `steps` more tokens (argmax; `pad` for rows finished before or by an id of `eos`), stopping
   * early once every row has finished. Returns the tokens chosen, one array per iteration, and the
   * state after feeding all but the last of them (which is the next input, as after step()).
   */
  private async greedyInGraph(tokens: number[], state: DecoderState, steps: number, eos: number[], pad: number, finished: boolean[], eosBanSteps: number): Promise<{ tokens: number[][]; state: DecoderState }> {
    const B = tokens.length;
    if (!(steps >= 1) || finished.length !== B) throw new BlipRuntimeError('BLIP5031', `greedy: ${steps} steps, ${finished.length} finished flags for ${B} rows`);
    const input: StepInput = { inputIds: BigInt64Array.from(tokens, BigInt), batch: B, seqLen: 1, attentionMask: new BigInt64Array(0), pastLength: state.mask[0]?.length ?? 0, prefill: false };
    let ban = { steps: 0, add: new Float32Array(1) };
    if (eosBanSteps > 0 && eos.length) {
      if (!this.logitsWidth) throw new BlipRuntimeError('BLIP5031', 'greedy: no step has run yet');
      const add = new Float32Array(this.logitsWidth);
      for (const e of eos) if (e >= 0 && e < add.length) add[e] = -Infinity;
      ban = { steps: eosBanSteps, add };
    }
    const { out, raw } = await this.run(input, state, { steps, eos: eos.length ? eos : [-1], pad, finished, ban });
    const t = raw[LOOP.tokens];
    const k = t?.dims[0] ?? 0;
    if (!t || t.type !== 'int64' || t.dims.length !== 2 || t.dims[1] !== B || k < 1 || k > steps) {
      throw new BlipRuntimeError('BLIP5044', `decoder.onnx ${LOOP.tokens} is ${t ? `${t.type} ${JSON.stringify(t.dims)}` : 'missing'}, int64 (1..${steps}, ${B}) expected`);
    }
    const data = t.data as BigInt64Array;
    const chosen = Array.from({ length: k }, (_, i) => Array.from(data.subarray(i * B, (i + 1) * B), Number));
    // run() accounted for the first token fed; the loop fed k - 1 more
    const st = out.state;
    const more = k - 1;
    return {
      tokens: chosen,
      state: { ...st, mask: st.mask.map((r) => [...r, ...new Array<number>(more).fill(1)]), lastPosition: st.lastPosition.map((p) => p + more) },
    };
  }

  private async run(
    input: StepInput,
    state: DecoderState | undefined,
    loop?: { steps: number; eos: number[]; pad: number; finished: boolean[]; ban: { steps: number; add: Float32Array } },
  ): Promise<{ out: StepOutput<DecoderState>; raw: Record<string, ort.Tensor> }> {
    const B = input.batch;
    const S = input.seqLen;
    const rowsOf = (a: BigInt64Array, width: number): number[][] => Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * width, (b + 1) * width), Number));
    let ids: number[][];
    let mask: number[][];
    let st: DecoderState;
    const feeds: Record<string, ort.Tensor> = {};
    const Q = this.prefixLength;
    if (!state) {
      ids = rowsOf(input.inputIds, S);
      mask = rowsOf(input.attentionMask, input.pastLength + S);
      if (S === 0 && this.o.prefillText) {
        ids = this.o.prefillText.inputIds.map((r) => r.slice());
        mask = (this.o.prefillText.attentionMask ?? ids.map((r) => r.map(() => 1))).map((r) => r.slice());
        if (ids.length !== B) throw new BlipRuntimeError('BLIP5031', `prefill text has ${ids.length} rows for a batch of ${B}`);
      }
      if (Q > 0) {
        if (this.o.prefix?.placeholders && !(S === 0 && this.o.prefillText)) {
          if (ids[0].length < Q) throw new BlipRuntimeError('BLIP5031', `the prompt has ${ids[0].length} ids, fewer than the ${Q} image placeholders`);
          ids = ids.map((r) => r.slice(Q));
        } else {
          mask = mask.map((r) => [...new Array<number>(Q).fill(1), ...r]);
        }
      }
      const fixed: Record<string, ort.Tensor> = {};
      for (const n of this.o.decoder.from_encode) {
        if (n === 'prefix_embeds' || !this.inputs.has(n)) continue;
        const t = this.o.encoded![n];
        if (t.dims[0] !== B) throw new BlipRuntimeError('BLIP5031', `${n} has ${t.dims[0]} rows for a batch of ${B}`);
        fixed[n] = t;
      }
      st = { rows: B, past: this.emptyPast(B), fixed, base: fixed, origin: Array.from({ length: B }, (_, b) => b), mask, lastPosition: [] };
      if (this.inputs.has('prefix_embeds')) {
        const p = this.o.encoded!.prefix_embeds;
        if (p.dims[0] !== B) throw new BlipRuntimeError('BLIP5031', `prefix_embeds has ${p.dims[0]} rows for a batch of ${B}`);
        feeds.prefix_embeds = p;
      }
      if (this.inputs.has('position_ids')) {
        // transformers 5.12 (GenerationMixin._prepare_position_ids_for_generation): cumsum(mask) - 1,
        // padding positions 0; each step then continues from the last column's (below)
        const pos = mask.map((r) => {
          let c = 0;
          return r.map((m) => {
            c += m;
            return m === 0 ? 0 : c - 1;
          });
        });
        st.lastPosition = pos.map((r) => r[r.length - 1]);
        feeds.position_ids = i64(pos);
      }
    } else {
      if (state.rows !== B) throw new BlipRuntimeError('BLIP5031', `state has ${state.rows} rows, the step ${B}`);
      ids = rowsOf(input.inputIds, S);
      mask = state.mask.map((r) => [...r, ...new Array<number>(S).fill(1)]);
      st = { ...state, mask };
      if (this.inputs.has('prefix_embeds')) feeds.prefix_embeds = new ort.Tensor('float32', new Float32Array(0), [B, 0, this.prefixWidth]);
      if (this.inputs.has('position_ids')) {
        const pos = state.lastPosition.map((p) => Array.from({ length: S }, (_, j) => p + 1 + j));
        st.lastPosition = pos.map((r) => r[r.length - 1]);
        feeds.position_ids = i64(pos);
      }
    }
    feeds.input_ids = i64(ids);
    if (this.inputs.has('attention_mask')) feeds.attention_mask = i64(mask);
    // a device-resident cache left unordered by reorder() is gathered here, on the device
    const pastIn = st.pending ? await this.deviceGather(st.past, st.pending) : st.past;
    Object.assign(feeds, pastIn, st.fixed);
    for (const n of this.inputs) if (!feeds[n]) throw new BlipRuntimeError('BLIP5044', `no value for decoder.onnx input ${n}`);
    for (const n of Object.keys(feeds)) if (!this.inputs.has(n)) delete feeds[n];
    if (this.loop) {
      // one plain step unless greedy() asked for more
      const l = loop ?? { steps: 1, eos: [-1], pad: 0, finished: new Array<boolean>(B).fill(false), ban: { steps: 0, add: new Float32Array(1) } };
      feeds[LOOP.maxSteps] = new ort.Tensor('int64', BigInt64Array.from([BigInt(l.steps)]), []);
      feeds[LOOP.eosIds] = new ort.Tensor('int64', BigInt64Array.from(l.eos, BigInt), [l.eos.length]);
      feeds[LOOP.padId] = new ort.Tensor('int64', BigInt64Array.from([BigInt(l.pad)]), []);
      feeds[LOOP.finished] = new ort.Tensor('bool', Uint8Array.from(l.finished, (f) => (f ? 1 : 0)), [B]);
      feeds[LOOP.eosBan] = new ort.Tensor('float32', l.ban.add, [l.ban.add.length]);
      feeds[LOOP.banSteps] = new ort.Tensor('int64', BigInt64Array.from([BigInt(l.ban.steps)]), []);
    }
    let out: Record<string, ort.Tensor>;
    try {
      out = await this.o.session.run(feeds);
    } catch (e) {
      throw new BlipRuntimeError('BLIP5043', `decoder.onnx failed (${oneLine(e)})`);
    } finally {
      if (pastIn !== st.past) releaseDevice(pastIn);
    }
    const logits = out.logits;
    const V = logits.dims[logits.dims.length - 1];
    this.logitsWidth = V;
    if (logits.type !== 'float32' || logits.dims.length !== 2 || logits.dims[0] !== B) {
      throw new BlipRuntimeError('BLIP5044', `decoder.onnx logits are ${logits.type} ${JSON.stringify(logits.dims)}, float32 (${B}, V) expected`);
    }
    const past: Record<string, ort.Tensor> = {};
    for (const n of Object.keys(st.past)) {
      const p = out[n.replace(/^past\./, 'present.')];
      if (!p) throw new BlipRuntimeError('BLIP5044', `decoder.onnx has no output ${n.replace(/^past\./, 'present.')}`);
      past[n] = p;
    }
    return { out: { logits: logits.data as Float32Array, vocab: V, state: { ...st, past, pending: undefined } }, raw: out };
  }

  private async deviceGather(past: Record<string, ort.Tensor>, rows: number[]): Promise<Record<string, ort.Tensor>> {
    if (!this.o.deviceRows) throw new BlipRuntimeError('BLIP5043', 'the KV cache is on the device but no device row gather was given; keep decoder outputs on the CPU for beam search');
    try {
      return await this.o.deviceRows.gather(past, rows);
    } catch (e) {
      if (e instanceof BlipRuntimeError) throw e;
      throw new BlipRuntimeError('BLIP5043', `reordering the KV cache on the device failed (${oneLine(e)})`);
    }
  }

  /** Releases the state's device-resident KV cache (CPU tensors are left to the garbage collector). */
  dispose(state: DecoderState): void {
    releaseDevice(state.past);
  }

  /**
   * The encoder-side tensors for rows reading encoded rows `origin`: `base` itself when the decoder
   * takes them grouped and each encoded row's readers are one contiguous run of the same length
   * (beams and returned sequences are), else `base` gathered to one row per step row.
   */
  private encodedRows(base: Record<string, ort.Tensor>, origin: number[]): Record<string, ort.Tensor> {
    const first = Object.values(base)[0];
    if (!first) return base;
    const I = first.dims[0];
    const G = origin.length / I;
    if (this.o.decoder.cross_rows === 'grouped' && Number.isInteger(G) && G >= 1 && origin.every((o, i) => o === Math.floor(i / G))) return base;
    return gatherAll(base, origin);
  }

  /**
   * Row i of the result is row rows[i] of `state`. The past K/V is gathered (it differs between
   * beams); the encoder-side tensors are rebuilt from the per-image `base` only when the row ->
   * image mapping changes (encodedRows: for a grouped decoder, never for beam search), never for
   * the per-step reorders, where every beam stays on its image.
   */
  reorder(state: DecoderState, rows: number[]): DecoderState {
    for (const r of rows) if (!Number.isInteger(r) || r < 0 || r >= state.rows) throw new BlipRuntimeError('BLIP5031', `reorder: row ${r} of ${state.rows}`);
    const identity = rows.length === state.rows && rows.every((r, i) => r === i);
    const origin = rows.map((r) => state.origin[r]);
    const sameImages = origin.length === state.origin.length && origin.every((o, i) => o === state.origin[i]);
    // A cache on the device is not gathered here (that needs a device run): the row map is composed
    // and applied by the next step.
    const onDevice = Object.values(state.past).some((t) => t.location === 'gpu-buffer');
    let pending: number[] | undefined;
    if (onDevice && !identity) {
      if (!this.o.deviceRows) throw new BlipRuntimeError('BLIP5043', 'cannot reorder a KV cache kept on the device without a device row gather; keep decoder outputs on the CPU for beam search');
      const composed = state.pending ? rows.map((r) => state.pending![r]) : rows;
      const rowsOfPast = Object.values(state.past)[0].dims[0];
      pending = composed.length === rowsOfPast && composed.every((r, i) => r === i) ? undefined : composed;
    } else if (identity) pending = state.pending;
    return {
      rows: rows.length,
      past: identity || onDevice ? state.past : gatherAll(state.past, rows),
      pending,
      fixed: sameImages ? state.fixed : this.encodedRows(state.base, origin),
      base: state.base,
      origin,
      mask: rows.map((i) => state.mask[i].slice()),
      lastPosition: rows.map((i) => state.lastPosition[i]),
    };
  }
}
