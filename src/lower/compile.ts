// The compile driver: a checked IrModel + a HuggingFace checkpoint directory -> an artifact
// directory (docs/architecture.md): encode.onnx / decoder.onnx / retrieval.onnx sharing one
// weights.bin, tokenizer files, manifest.json.
//
//   1. resolve attributes (src/lower/resolve.ts)
//   2. partition: a model with `generate(x)` gets encode.onnx (every node that runs once per input,
//      plus x's own once-per-input part: cross K/V, prefix) and decoder.onnx (x's step with a KV
//      cache); a model with itm/itc outputs gets one retrieval.onnx
//   3. lower every node through its kind (src/nodes/*.ts, contract in ./contract.ts), recording
//      each checkpoint tensor it reads; then check coverage: every tensor read by some node or
//      deliberately ignored by its kind. All problems are reported at once, before anything is written.
//   4. prune dead nodes, check each graph, stream the weights (one tensor at a time) into
//      OUT.tmp-<pid>-<call>/weights.bin, write the graphs, tokenizer files and, last, the manifest; rename.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { IrModel, IrNode, IrOutput, SourceLoc } from '../ir/types.js';
import type { Attrs, PortRole } from '../nodes/NodeKind.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, manifestErrors, type GraphEntry, type Manifest, type TensorIO } from '../artifact/manifest.js';
import { VERSION } from '../version.js';
import { GraphBuilder, Value } from './GraphBuilder.js';
import { WeightStore } from './WeightStore.js';
import { encodeModel, toModelProto } from './emitOnnx.js';
import { CompileError, type Problem } from './CompileError.js';
import { resolveNodes, type ResolvedNode } from './resolve.js';
import { describeCheckpoint, pairingProblems, unownedPart } from './pairing.js';
import { nodeKinds, portWith, roleOf } from '../nodes/index.js';
import { effectiveConfig } from '../weights/transformersConfig.js';
import { checkWidths } from '../checks/widths.js';
import { sizeProblems } from '../checks/NodeSizesRule.js';
import { foldOutputIdentities, graphProblems, pruneDead } from './graphCheck.js';
import { familyOf, generationFor, preprocessFor, textConventionsFor, textSectionOf } from './conventions.js';
import { outputLength } from './prefixLength.js';
import { floatInput, floatOutput, QueryGroups, transpose2d } from './transformer.js';
import type { DecoderFacts, EncodeSide, Flow, KV, LowerContext, ParamOptions } from './contract.js';
import { rewriteGraph, type RewriteReport, type Target } from '../rewrite/index.js';
import { compileCall, markPartialOutput, partialOutputPath, removeStaleLeftovers, replacedOutputPath, swapIntoPlace, unmarkPartialOutput } from './partialOutput.js';
import { isSystemError, makeDirectories, systemErrorLine, systemErrorMeaning } from '../filesystem.js';
import { readJsonFile } from '../jsonSyntax.js';
import { PairRows } from './pairs.js';
import { keepFloat32Names, keptFloat32 } from './keepFloat32.js';
import { summarizeConfigMismatch, type TensorRead } from './configMismatch.js';
import { projectionLayoutProblems } from './projectionLayout.js';
import { manifestValueProblems, textDefaults } from './manifestValues.js';
import { hasTokenizer, loadTokenizer, TOKENIZER_FILES } from '../../runtime/tokenizers/hf.js';
import { TokenizerLoadError } from '../../runtime/errors.js';

export interface CompileOptions {
  model: IrModel;
  /** Path and text of the .blip file (recorded with its sha256 in the manifest). */
  graphFile: string;
  graphText: string;
  /** Checkpoint directory. */
  weights: string;
  out: string;
  dtype?: 'float32' | 'float16';
  /** Fused operators for this runtime target (src/rewrite/); 'plain' (the default): standard ONNX only. */
  target?: Target;
  /** Weight-only block quantization of the linear layers (MatMulNBits). */
  quantize?: 'int8' | 'int4';
  /** Bytes of weights written so far, in all, and the tensor just written. */
  onProgress?: (done: number, total: number, key: string) => void;
  /**
   * Stops the compile (checked between tensors): the partial output is removed, OUT is left as it
   * was, and the promise rejects with the signal's reason. `blip compile` aborts it on SIGINT,
   * SIGTERM and SIGHUP.
   */
  signal?: AbortSignal;
}

export interface CompileResult {
  out: string;
  manifest: Manifest;
  parameters: number;
  graphs: Array<{ name: string; file: string; nodes: number; bytes: number }>;
  weightsBytes: number;
  seconds: number;
  warnings: string[];
  /** Fusions applied per graph (empty for --target plain). */
  rewrites: Record<string, RewriteReport>;
}

const WEIGHTS_FILE = 'weights.bin';
type GraphName = 'encode' | 'decoder' | 'retrieval';

/** Lowers nodes into graphs, collecting problems instead of stopping at the first. */
class Lowerer {
  readonly problems: Problem[] = [];
  /** Checkpoint keys some node asked for (found or not, well-shaped or not): the coverage check's "read". */
  readonly requested = new Set<string>();
  /** Per node, each tensor it asked for: the shape its attributes imply and the checkpoint's (none: missing). */
  readonly reads = new Map<string, Map<string, TensorRead>>();
  /** The tensor a BLIP4010 / BLIP4011 problem is about (./configMismatch.ts groups them by layer). */
  readonly tensorOf = new WeakMap<Problem, string>();
  private readonly seen = new Set<string>();
  /** retrieval.onnx: which flows have one row per image and which one per pair (./pairs.ts). */
  pairs?: PairRows;
  /** The checkpoint model's keep-in-float32 names (transformers' `_keep_in_fp32_modules`, ./keepFloat32.ts). */
  private readonly keepFloat32: string[];

  constructor(
    readonly model: IrModel,
    readonly ckpt: Checkpoint,
    readonly store: WeightStore,
    readonly nodes: Map<string, ResolvedNode>,
    private readonly graphFile: string,
  ) {
    this.keepFloat32 = keepFloat32Names(ckpt.config);
  }

  /**
   * A .blip location as the ONNX nodes record it: relative to the compiled file's folder, so the
   * same graph and checkpoint give the same bytes from whatever folder `blip compile` runs in.
   */
  sourceRef(loc: SourceLoc): string {
    const file = relative(dirname(resolve(this.graphFile)), resolve(loc.file)) || basename(loc.file);
    return `${file}:${loc.line}:${loc.column}`;
  }

  report(p: Problem): void {
    const k = `${p.code}:${p.message}`;
    if (!this.seen.has(k)) this.seen.add(k), this.problems.push(p);
  }

  context(b: GraphBuilder, rn: ResolvedNode, graph: GraphName): LowerContext {
    const { node, attrs } = rn;
    // `../name`: a tensor beside the node's prefix (BLIP-2's query_tokens sit next to `qformer`).
    const key = (name: string) => {
      let base = node.checkpoint;
      while (name.startsWith('../')) (base = base.includes('.') ? base.slice(0, base.lastIndexOf('.')) : ''), (name = name.slice(3));
      return base && name ? `${base}.${name}` : base || name;
    };
    const where = `node "${node.name}" (${node.kind})`;
    const origin = `${where} at ${node.loc.file}:${node.loc.line}:${node.loc.column}`;
    const attr = (a: string, type: 'number' | 'string' | 'boolean') => {
      const v = attrs[a];
      if (typeof v === type) return v;
      // a section the file chose over the kind's usual one (config: "qformer_config" on a vit) is the likelier cause
      const usual = nodeKinds[node.kind]?.defaultConfig;
      const section = usual !== undefined && node.config !== undefined && node.config !== usual && typeof this.ckpt.config[usual] === 'object' ? usual : undefined;
      throw new CompileError(
        'BLIP4014',
        section
          ? `attribute "${a}" of ${where} is not in config.json "${node.config}", the section its config: names; ${node.kind} nodes read "${section}", which the checkpoint has: write config: "${section}" (or pin ${a})`
          : `attribute "${a}" of ${where} is not pinned in the file and the checkpoint does not give it (${node.config ? `config.json "${node.config}"` : 'no config section'}); pin it, e.g. \`${a}: …\``,
        (section && node.attrLocs.config) || node.loc,
      );
    };
    b.origin = this.sourceRef(node.loc);
    const self = this;
    return {
      b,
      node,
      attrs,
      graph,
      has: (name) => self.ckpt.has(key(name)),
      keptFloat32: (name) => keptFloat32(self.keepFloat32, key(name)),
      connected: (port) => node.edges.some((e) => e.port === port),
      attrLoc: (a) => node.attrLocs[a] ?? node.loc,
      int: (a) => attr(a, 'number') as number,
      num: (a) => attr(a, 'number') as number,
      str: (a) => attr(a, 'string') as string,
      bool: (a) => attr(a, 'boolean') as boolean,
      param(name: string, shape: number[], opts: ParamOptions = {}): Value {
        const k = key(name);
        self.requested.add(k);
        const info = self.ckpt.info(k);
        if (!self.reads.has(node.name)) self.reads.set(node.name, new Map());
        self.reads.get(node.name)!.set(k, { expected: shape, found: info?.shape });
        const placeholder = new Value(`<missing ${k}>`, b);
        if (!info) {
          const p: Problem = { code: 'BLIP4010', message: `the checkpoint has no tensor "${k}", which ${where} needs${opts.neededBecause ? `: ${opts.neededBecause}` : hint(self.ckpt, k)}`, loc: node.loc };
          self.tensorOf.set(p, k);
          self.report(p);
          return placeholder;
        }
        if (info.shape.join(',') !== shape.join(',')) {
          self.report({
            code: 'BLIP4012',
            message: `tensor "${k}" has shape [${info.shape.join(', ')}], but ${where} expects [${shape.join(', ')}] from its attributes (${describe(attrs)})`,
            loc: node.loc,
            shape: { key: k, found: info.shape, expected: shape },
          });
          return placeholder;
        }
        if (opts.transpose) {
          if (shape.length !== 2) throw new Error(`${k}: only 2-D weights can be transposed`);
          const [o, i] = shape;
          return b.weight({ key: `${k}:T`, dims: [i, o], produce: (s) => transpose2d(self.ckpt.readFloat32(k, s), o, i, s), origin });
        }
        return b.weight({ key: k, dims: shape, produce: (s) => self.ckpt.readFloat32(k, s), origin });
      },
    };
  }

  /**
   * A model input as graph inputs, declared on first use. The first text input of a graph is
   * `input_ids`/`attention_mask`, another one gets its name; text reaching a port whose role is
   * 'instruction' (the Q-Former's `instruction:`) is tokenized by the Q-Former's own tokenizer, so
   * it is a separate pair, `qformer_input_ids`/`qformer_attention_mask` (docs/architecture.md).
   */
  input(b: GraphBuilder, flows: Map<string, Flow>, imageSize: number, name: string, role: PortRole | undefined): Flow {
    const instruction = role === 'instruction' && this.model.inputs.find((i) => i.name === name)?.type === 'text';
    const slot = instruction ? `${name}#qformer` : name;
    const known = flows.get(slot);
    if (known) return known;
    const decl = this.model.inputs.find((i) => i.name === name)!;
    let f: Flow;
    if (decl.type === 'image') {
      f = { type: 'image', pixels: floatInput(b, 'pixel_values', [this.pairs ? 'images' : 'batch', 3, imageSize, imageSize]) };
      this.pairs?.mark(f, 'images');
    }
    else {
      const first = this.model.inputs.filter((i) => i.type === 'text')[0]?.name === name;
      const [ids, mask] = instruction ? ['qformer_input_ids', 'qformer_attention_mask'] : first ? ['input_ids', 'attention_mask'] : [`${name}_input_ids`, `${name}_attention_mask`];
      const seq = instruction ? 'qformer_sequence' : 'sequence';
      f = { type: 'text', ids: b.input(ids, 'int64', ['batch', seq]), mask: b.input(mask, 'int64', ['batch', seq]) };
    }
    flows.set(slot, f);
    return f;
  }

  /** Nodes lowered in topological order, model inputs declared as they are first read. */
  lowerNodes(b: GraphBuilder, graph: GraphName, names: Set<string>, imageSize: number): Map<string, Flow> {
    const flows = new Map<string, Flow>();
    for (const node of this.model.nodes) {
      if (!names.has(node.name)) continue;
      const rn = this.nodes.get(node.name)!;
      const read = this.inputsOf(node, flows, (name, port) => this.input(b, flows, imageSize, name, roleOf(rn.kind, port)));
      flows.set(
        node.name,
        b.scope(node.name, () => {
          if (!this.pairs) return rn.kind.lowering!.lower!(this.context(b, rn, graph), read);
          const { inputs, rows } = this.pairs.align(read);
          return this.pairs.mark(rn.kind.lowering!.lower!(this.context(b, rn, graph), inputs), rows);
        }),
      );
    }
    return flows;
  }

  inputsOf(node: IrNode, flows: Map<string, Flow>, input: (name: string, port: string) => Flow): Record<string, Flow> {
    const out: Record<string, Flow> = {};
    for (const e of node.edges) {
      const f = this.model.inputs.some((i) => i.name === e.from) ? input(e.from, e.port) : flows.get(e.from);
      if (!f) throw new Error(`internal: node ${node.name} reads ${e.from}, which is not lowered in this graph`);
      out[e.port] = f;
    }
    return out;
  }
}

/** Nodes an output depends on (transitively), by name. */
function upstream(model: IrModel, roots: string[]): Set<string> {
  const byName = new Map(model.nodes.map((n) => [n.name, n]));
  const out = new Set<string>();
  const visit = (name: string) => {
    const n = byName.get(name);
    if (!n || out.has(name)) return;
    out.add(name);
    for (const e of n.edges) visit(e.from);
  };
  roots.forEach(visit);
  return out;
}

/** A few attributes for shape-mismatch messages. */
function describe(a: Attrs): string {
  return Object.entries(a)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** "; did you mean …" when the checkpoint has a near name (another prefix, a renamed layer). */
function hint(ckpt: Checkpoint, key: string): string {
  const tail = key.split('.').slice(-3).join('.');
  const near = ckpt.keys().find((k) => k.endsWith(tail));
  return near ? ` (it has "${near}")` : '';
}

function tensorIO(vi: { name?: string | null; type?: { tensorType?: { elemType?: number | null; shape?: { dim?: Array<{ dimValue?: unknown; dimParam?: string | null }> | null } | null } | null } | null }): TensorIO {
  const t = vi.type!.tensorType!;
  const type = t.elemType === 7 ? 'int64' : t.elemType === 10 ? 'float16' : 'float32';
  const shape = (t.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));
  return { name: vi.name!, type, shape };
}

function emitFloat(b: GraphBuilder, v: Value, name: string, dims: (number | string)[]): void {
  floatOutput(b, v, name, dims);
}

export async function compile(opts: CompileOptions): Promise<CompileResult> {
  const t0 = Date.now();
  const { model } = opts;
  const floatType = opts.dtype ?? 'float32';
  const ckpt = Checkpoint.open(opts.weights);
  let widthProblems: Problem[] = [];
  try {
    const family = familyOf(ckpt.config, opts.weights);
    // Another model's checkpoint is said as such, before its sizes fail one by one.
    const needed = upstream(model, model.outputs.flatMap((o) => o.args));
    const pairing = pairingProblems(model, needed, ckpt.config, ckpt.keys(), opts.graphFile);
    if (!pairing.length) pairing.push(...projectionLayoutProblems(model, needed, (k) => ckpt.shape(k), ckpt.keys()));
    if (pairing.length) throw new CompileError(pairing);
    const { nodes, problems } = resolveNodes(model, ckpt);
    // Widths left out of the file are known only now, from the checkpoint: check the edges again
    // (a projection fed by a Q-Former of another width, a prefix narrower than the LLM).
    // They are reported with the tensor problems found while lowering, all at once.
    const resolvedAttrs = Object.fromEntries([...nodes].map(([name, r]) => [name, r.attrs]));
    // Heads that do not divide the width where the checkpoint gave them: transformers refuses such a
    // config; compiled, the model would fail at run time. (An image size that is no multiple of the
    // patch transformers takes, flooring the grid, and so does the lowering.)
    for (const [name, r] of nodes) {
      for (const [attr, message] of sizeProblems(r.node.kind, r.attrs)) {
        if (attr !== 'heads' && attr !== 'kv_heads') continue;
        const whole = attr === 'heads' ? 'width' : 'heads';
        problems.push({ code: 'BLIP4017', message: `node "${name}" (${r.node.kind}): ${message} (${whole}: ${r.from[whole]}; ${attr}: ${r.from[attr]}); transformers refuses it too`, loc: r.node.attrLocs[attr] ?? r.node.loc });
      }
    }
    widthProblems = checkWidths(model, resolvedAttrs).map((d) => ({ code: d.code, message: `${d.message} (sizes resolved from the checkpoint)`, loc: d.loc }));
    if (problems.length) throw new CompileError([...problems, ...widthProblems]);

    const gens = model.outputs.filter((o) => o.task === 'generate');
    const rets = model.outputs.filter((o) => o.task !== 'generate');
    if (gens.length > 1) throw new CompileError('BLIP4015', `model "${model.name}" has ${gens.length} generate outputs; an artifact drives one decoder`, gens[1].loc);
    if (gens.length && rets.length) throw new CompileError('BLIP4015', `model "${model.name}" mixes generate and ${rets[0].task} outputs; compile them as two models`, rets[0].loc);
    for (const t of ['itm', 'itc'] as const) {
      const same = rets.filter((o) => o.task === t);
      if (same.length > 1) throw new CompileError('BLIP4015', `model "${model.name}" has ${same.length} ${t} outputs; retrieval.onnx has one of each`, same[1].loc);
    }

    // The node that reads the image input (a vit) sizes pixel_values, and its output is image_embeds.
    const imageInputs = new Set(model.inputs.filter((i) => i.type === 'image').map((i) => i.name));
    const imageReader = [...nodes.values()].find((r) => r.node.edges.some((e) => imageInputs.has(e.from)));
    const imageSize = imageReader?.kind.imageSize?.(imageReader.attrs) ?? 224;
    const store = new WeightStore(floatType);
    const lw = new Lowerer(model, ckpt, store, nodes, opts.graphFile);
    const graphs: GraphBuilder[] = [];
    let decoderFacts: DecoderFacts | undefined;
    let fromEncode: string[] = [];
    let encodeTakesText = false;
    let prefixLength: number | undefined;

    if (gens.length) {
      const gen = nodes.get(gens[0].args[0])!;
      const dec = gen.kind.lowering?.decoder;
      if (!dec) throw new CompileError('BLIP4015', `node "${gen.node.name}" (${gen.node.kind}) cannot drive generate(): its kind has no decoder lowering`, gens[0].loc);
      // encode.onnx: everything upstream of the decoder, then the decoder's once-per-input part.
      const enc = new GraphBuilder('encode', store);
      const facts = (decoderFacts = dec.facts(lw.context(enc, gen, 'encode')));
      const crossDims = ['batch', facts.kvHeads, 'cross_sequence', facts.headDim];
      const encNodes = upstream(model, gen.node.edges.map((e) => e.from));
      const flows = lw.lowerNodes(enc, 'encode', encNodes, imageSize);
      // The decoder's own text (a caption prompt) is fed to decoder.onnx, not to encode.onnx;
      // an encoder-decoder LLM (dec.textInEncode: T5) reads it in encode.onnx instead.
      const genInputs: Record<string, Flow> = {};
      for (const e of gen.node.edges) {
        const isText = model.inputs.some((i) => i.name === e.from && i.type === 'text');
        if (isText && !dec.textInEncode) continue;
        const f = isText ? lw.input(enc, flows, imageSize, e.from, roleOf(gen.kind, e.port)) : flows.get(e.from);
        if (f) genInputs[e.port] = f;
      }
      const side: EncodeSide = enc.scope(gen.node.name, () => dec.encode(lw.context(enc, gen, 'encode'), genInputs));
      const imageFeatures = imageReader && flows.get(imageReader.node.name);
      if (imageFeatures?.type === 'features') emitFloat(enc, imageFeatures.hidden, 'image_embeds', ['batch', 'image_sequence', imageReader!.kind.outputWidth(imageReader!.attrs)!]);
      side.cross?.forEach((kv, i) => {
        emitFloat(enc, kv.key, `cross.${i}.key`, crossDims);
        emitFloat(enc, kv.value, `cross.${i}.value`, crossDims);
      });
      if (side.crossMask) enc.output(side.crossMask, 'cross_attention_mask', 'int64', ['batch', 'cross_sequence']);
      if (side.prefix) {
        emitFloat(enc, side.prefix, 'prefix_embeds', ['batch', 'prefix_sequence', facts.prefixWidth ?? facts.hidden]);
        // the positions it takes: the runtime's placeholders and length checks count these, which are
        // num_query_tokens only for a Q-Former's queries (a ViT's outputs are 1 + grid²)
        const softPrompt = portWith(gen.kind, 'soft-prompt');
        const edge = gen.node.edges.find((e) => e.port === softPrompt);
        prefixLength = edge && outputLength(nodes, edge.from);
      }
      encodeTakesText = enc.inputs.some((i) => i.name === 'input_ids');
      graphs.push(enc);

      // decoder.onnx: one step.
      const d = new GraphBuilder('decoder', store);
      const ctx = lw.context(d, gen, 'decoder');
      const ids = d.input('input_ids', 'int64', ['batch', 'sequence']);
      const mask = d.input('attention_mask', 'int64', ['batch', 'total_sequence']);
      const positions = facts.positions === 'input' ? d.input('position_ids', 'int64', ['batch', 'position_sequence']) : undefined;
      const prefix = side.prefix ? floatInput(d, 'prefix_embeds', ['batch', 'prefix_sequence', facts.prefixWidth ?? facts.hidden]) : undefined;
      const kvDims = ['batch', facts.kvHeads, 'past_sequence', facts.headDim];
      const past: KV[] = Array.from({ length: facts.layers }, (_, i) => ({ key: floatInput(d, `past.${i}.key`, kvDims), value: floatInput(d, `past.${i}.value`, kvDims) }));
      // The cross K/V come one row per encoded row ('cross_batch'); the step's rows ('batch') are
      // those rows' beams in groups (QueryGroups, manifest decoder.cross_rows 'grouped').
      const stepCrossDims = ['cross_batch', ...crossDims.slice(1)];
      const cross = side.cross?.map((_, i) => ({
        key: floatInput(d, `cross.${i}.key`, stepCrossDims),
        value: floatInput(d, `cross.${i}.value`, stepCrossDims),
      }));
      const crossMask = side.crossMask ? d.input('cross_attention_mask', 'int64', ['cross_batch', 'cross_sequence']) : undefined;
      const crossGroups = cross?.length ? new QueryGroups(d, cross[0].key) : undefined;
      const step = d.scope(gen.node.name, () => dec.step(ctx, { ids, mask, past, cross, crossMask, crossGroups, prefix, positions }));
      if (crossGroups && !crossGroups.used) throw new Error(`internal: ${gen.node.kind}'s decoder step takes cross keys/values but did not attend through io.crossGroups`);
      emitFloat(d, step.logits, 'logits', ['batch', facts.vocab]);
      step.present.forEach((kv, i) => {
        emitFloat(d, kv.key, `present.${i}.key`, ['batch', facts.kvHeads, 'total_sequence', facts.headDim]);
        emitFloat(d, kv.value, `present.${i}.value`, ['batch', facts.kvHeads, 'total_sequence', facts.headDim]);
      });
      fromEncode = d.inputs.map((i) => i.name!).filter((n) => enc.outputs.some((o) => o.name === n));
      graphs.push(d);
    } else {
      const r = new GraphBuilder('retrieval', store);
      const pairs = (lw.pairs = new PairRows(r));
      const flows = lw.lowerNodes(r, 'retrieval', upstream(model, rets.flatMap((o) => o.args)), imageSize);
      for (const o of rets) {
        r.origin = lw.sourceRef(o.loc);
        lowerRetrievalTask(r, o, flows, pairs);
      }
      graphs.push(r);
    }

    // Coverage: every checkpoint tensor is read by a node, or deliberately ignored by its kind.
    const read = new Set([...lw.requested, ...store.keys.map((k) => k.split(':')[0])]);
    const used = upstream(model, model.outputs.flatMap((o) => o.args));
    const unowned = new Map<string, number>(); // top-level prefix no node claims -> its tensor count
    const keys = ckpt.keys();
    const nodePrefixes = model.nodes.map((n) => n.checkpoint);
    for (const key of keys) {
      if (read.has(key)) continue;
      // The node whose prefix is the longest match owns the tensor.
      const owners = model.nodes.filter((n) => n.checkpoint === '' || key.startsWith(`${n.checkpoint}.`)).sort((a, b) => b.checkpoint.length - a.checkpoint.length);
      const ignored = owners.some((n) => {
        if (!used.has(n.name)) return true; // a node no output needs: its tensors are the file's business
        const rn = nodes.get(n.name)!;
        const rel = n.checkpoint ? key.slice(n.checkpoint.length + 1) : key;
        const connected = (port: string) => n.edges.some((e) => e.port === port);
        return (rn.kind.lowering?.ignored?.(rn.attrs, connected) ?? []).some((re) => new RegExp(`^(?:${re.source})$`).test(rel));
      });
      // beside the prefix of a node no output needs (query_tokens of a bypassed Q-Former)
      const besideUnused = model.nodes.some((n) => {
        const pattern = used.has(n.name) ? undefined : nodes.get(n.name)?.kind.lowering?.beside;
        const parent = n.checkpoint.includes('.') ? n.checkpoint.slice(0, n.checkpoint.lastIndexOf('.') + 1) : '';
        return pattern && key.startsWith(parent) && pattern.some((re) => new RegExp(`^(?:${re.source})$`).test(key.slice(parent.length)));
      });
      if (ignored || besideUnused) continue;
      const owner = owners[0];
      if (!owner) {
        const part = unownedPart(key, nodePrefixes);
        unowned.set(part, (unowned.get(part) ?? 0) + 1);
        continue;
      }
      const unread: Problem = {
        code: 'BLIP4011',
        message: `the checkpoint has tensor "${key}" under node "${owner.name}"'s prefix "${owner.checkpoint}", but ${owner.kind} does not read it: a different architecture than the file describes?`,
        loc: owner.loc,
      };
      lw.tensorOf.set(unread, key);
      lw.report(unread);
    }
    // Whole parts of the checkpoint no node reads (a caption graph given a VQA checkpoint): one line
    // saying what the checkpoint is, not a line per tensor.
    if (unowned.size) {
      const parts = [...unowned].map(([p, n]) => `"${p}${keys.some((k) => k.startsWith(`${p}.`)) ? '.' : ''}" (${n} tensor${n > 1 ? 's' : ''})`).join(', ');
      // (a graph that drops a head on purpose says so by declaring its node unused: docs/composition.md)
      const onPurpose = `; to leave ${unowned.size > 1 ? 'them' : 'it'} out on purpose, declare a node at ${unowned.size > 1 ? 'each such prefix' : 'that prefix'} that no output reads`;
      lw.report({ code: 'BLIP4019', message: `the checkpoint is another model than "${model.name}" describes: no node reads its tensors under ${parts}; ${describeCheckpoint(ckpt.config, keys, opts.graphFile)}${onPurpose}`, loc: model.loc });
    }
    summarizeWholeDefaults(model, ckpt, lw.problems);
    summarizeConfigMismatch(nodes, lw.problems, lw.reads, lw.tensorOf, keys);
    if (lw.problems.length || widthProblems.length) throw new CompileError([...lw.problems, ...widthProblems]);

    const rewrites: Record<string, RewriteReport> = {};
    for (const g of graphs) {
      pruneDead(g);
      foldOutputIdentities(g);
    }
    // Parameters as the checkpoint counts them (before --quantize packs weights), shared tensors once.
    const parameters = store.parameters(graphs.flatMap((g) => [...g.weightNames]));
    for (const g of graphs) {
      // Fused operators for the target (src/rewrite/index.ts), before the weights are streamed.
      if ((opts.target && opts.target !== 'plain') || opts.quantize) rewrites[g.name] = rewriteGraph(g, { target: opts.target ?? 'plain', quantize: opts.quantize });
      const bad = graphProblems(g);
      if (bad.length) throw new Error(`internal: invalid ${g.name} graph: ${bad.join('; ')}`);
    }

    const limits = positionLimits(model, nodes, gens);
    const maxPositionEmbeddings = generatingPositions(nodes, gens);
    const vocabs = textVocabularies(model, nodes, gens);
    // A graph that connects no text input generates from the image alone: the manifest says so and
    // the runtime refuses a prompt rather than feeding it to the decoder anyway.
    const textInputs = new Set(model.inputs.filter((i) => i.type === 'text').map((i) => i.name));
    const takesPrompt = model.nodes.some((n) => used.has(n.name) && n.edges.some((e) => textInputs.has(e.from)));
    // an InstructBLIP-style graph whose LLM has no text port: the prompt is the Q-Former's alone
    const llmPrompt = !(family === 'instructblip' && takesPrompt && gens.length && !nodes.get(gens[0]!.args[0]!)!.node.edges.some((e) => textInputs.has(e.from)));
    return { ...(await writeArtifact(opts, { ckpt, store, graphs, family, decoderFacts, fromEncode, encodeTakesText, takesPrompt, llmPrompt, rets, gens, imageSize, limits, maxPositionEmbeddings, vocabs, t0, parameters, prefixLength })), rewrites };
  } catch (e) {
    // Lowering nodes whose widths disagree can fail in ways of its own; the widths are the cause.
    if (widthProblems.length && !(e instanceof CompileError)) throw new CompileError(widthProblems);
    throw e;
  } finally {
    ckpt.close();
  }
}

/**
 * A config section left out is its class with every default (OPTConfig(): 12 layers of 768); over a
 * smaller checkpoint that is a missing or misshapen tensor per weight. Those of each node reading
 * such a section become one line naming the cause. Edits `problems` in place.
 */
function summarizeWholeDefaults(model: IrModel, ckpt: Checkpoint, problems: Problem[]): void {
  const { wholeDefaults, filled } = effectiveConfig(ckpt.config);
  for (const section of wholeDefaults) {
    for (const node of model.nodes) {
      if ((node.config ?? nodeKinds[node.kind]?.defaultConfig) !== section) continue;
      // (the checkpoint's layers past the defaulted depth are unread: the same cause)
      const tensorProblems = problems.filter((p) => (p.code === 'BLIP4010' || p.code === 'BLIP4011' || p.code === 'BLIP4012') && p.loc === node.loc);
      if (!tensorProblems.length) continue;
      const at = problems.indexOf(tensorProblems[0]);
      for (const p of tensorProblems) problems.splice(problems.indexOf(p), 1);
      const how = ckpt.config[section] === null ? `has "${section}": null` : `has no "${section}"`;
      problems.splice(at, 0, {
        code: 'BLIP4017',
        message: `config.json ${how}, so transformers builds ${filled.get(section)?.cls ?? 'its class'} with every default, and the checkpoint's tensors under "${node.checkpoint}." do not fit that model (${tensorProblems.length} missing, misshapen or unread, the first: ${tensorProblems[0].message}); write the section into config.json`,
        loc: node.loc,
      });
      // the nodes reading this one size their cross-attention by its defaulted width: their
      // misshapen tensors echo the same cause
      const readers = new Set(model.nodes.filter((n) => n.edges.some((e) => e.from === node.name)).map((n) => n.loc));
      for (let i = problems.length - 1; i >= 0; i--) if (problems[i]!.code === 'BLIP4012' && readers.has(problems[i]!.loc!)) problems.splice(i, 1);
    }
  }
}

/**
 * itm(head) -> itm_logits, itm_score; itc(image, text) -> image_embeds (one per image),
 * text_embeds, itc_score (one per pair: ./pairs.ts).
 */
function lowerRetrievalTask(b: GraphBuilder, o: IrOutput, flows: Map<string, Flow>, pairs: PairRows): void {
  b.scope(o.name, () => {
    if (o.task === 'itm') {
      const head = flows.get(o.args[0]);
      if (head?.type !== 'logits') throw new CompileError('BLIP4015', `itm(${o.args[0]}) needs a classifier node`, o.loc);
      const f = pairs.toPairs(head) as typeof head;
      emitFloat(b, f.logits, 'itm_logits', ['batch', 2]);
      // "match" is class 1 of BLIP's itm_head (softmax(itm_score)[:, 1] in the model card examples).
      const probs = b.softmax(f.logits, -1, 'itm_probs');
      emitFloat(b, b.gather(probs, b.int64([1], [], 'match_index'), 1, 'itm_match'), 'itm_score', ['batch']);
    } else {
      const [image, words] = o.args.map((a) => flows.get(a));
      if (image?.type !== 'embedding' || words?.type !== 'embedding') throw new CompileError('BLIP4015', `itc(${o.args.join(', ')}) needs two embed nodes`, o.loc);
      const rows = pairs.rowsOf(image) === 'images' ? 'images' : 'batch';
      emitFloat(b, image.embeds, 'image_embeds', image.perQuery ? [rows, 'queries', 'embed'] : [rows, 'embed']);
      emitFloat(b, words.embeds, 'text_embeds', ['batch', 'embed']);
      const [img, txt] = [pairs.toPairs(image), pairs.toPairs(words)] as Array<typeof image>;
      // Pair p: its image's embedding against its text's, the diagonal of image_feat @ text_featᵀ;
      // per-query image embeddings (BLIP-2) score with their best query (max over Q).
      const text = img.perQuery ? b.unsqueeze(txt.embeds, [1], 'itc_text_row') : txt.embeds; // (B, 1, E) against (B, Q, E)
      let sim = b.op('ReduceSum', [b.mul(img.embeds, text, 'itc_products'), b.int64([-1], [1], 'itc_axis')], { keepdims: 0 }, { name: 'itc_sim' });
      if (img.perQuery) sim = b.op('ReduceMax', [sim], { axes: [1], keepdims: 0 }, { name: 'itc_best_query' }); // (B, Q) -> (B)
      emitFloat(b, sim, 'itc_score', ['batch']);
    }
  });
}

interface Built {
  ckpt: Checkpoint;
  store: WeightStore;
  graphs: GraphBuilder[];
  family: Manifest['family'];
  decoderFacts?: DecoderFacts;
  fromEncode: string[];
  encodeTakesText: boolean;
  /** Some node an output needs reads a text input. */
  takesPrompt: boolean;
  /** The generating decoder reads the text too (false: only an InstructBLIP Q-Former does). */
  llmPrompt: boolean;
  rets: IrOutput[];
  gens: IrOutput[];
  imageSize: number;
  limits: NonNullable<Manifest['text']['max_positions']>;
  /** The generating node's max_positions (manifest text.max_position_embeddings). */
  maxPositionEmbeddings?: number;
  vocabs: NonNullable<Manifest['text']['vocab_sizes']>;
  t0: number;
  /** Parameter count before --quantize packs weights. */
  parameters: number;
  /** Positions the decoder's visual prefix takes (decoder-only LLMs), when its producers' attributes fix them (./prefixLength.ts). */
  prefixLength?: number;
}

/**
 * Learned-position limits of the text paths, for the runtime to refuse over-long inputs clearly.
 * Only kinds with a learned position table have one (NodeKind.learnedPositions: bert, qformer,
 * opt); rotary (llama) and relative (t5) positions have no hard limit.
 */
function positionLimits(model: IrModel, nodes: Map<string, ResolvedNode>, gens: IrOutput[]): NonNullable<Manifest['text']['max_positions']> {
  const limits: NonNullable<Manifest['text']['max_positions']> = {};
  const learned = (r: ResolvedNode | undefined) => (r?.kind.learnedPositions && typeof r.attrs.max_positions === 'number' ? r.attrs.max_positions : undefined);
  const gen = gens.length ? nodes.get(gens[0].args[0]) : undefined;
  const d = learned(gen);
  if (d !== undefined) limits.decoder = d;
  for (const r of textReaders(model, nodes, gen)) {
    const n = learned(r);
    if (n === undefined) continue;
    const path = textPath(r);
    limits[path] = Math.min(limits[path] ?? Infinity, n);
  }
  return limits;
}

/**
 * The generating model's max_position_embeddings, where transformers caps its default length
 * (prompt + 20 new tokens): its kind's NodeKind.maxPositionEmbeddings. A kind without one (t5's
 * relative positions) leaves the default uncapped, as transformers does for a config without the key.
 */
function generatingPositions(nodes: Map<string, ResolvedNode>, gens: IrOutput[]): number | undefined {
  const gen = gens.length ? nodes.get(gens[0].args[0]) : undefined;
  return gen?.kind.maxPositionEmbeddings?.(gen.attrs);
}

/**
 * The vocabularies of the text encoders and Q-Formers that read the model's text inputs: a
 * tokenizer can hold tokens beyond them (a processor's added `<image>`), which the runtime then
 * names (BLIP5033) instead of failing in onnxruntime's Gather.
 */
function textVocabularies(model: IrModel, nodes: Map<string, ResolvedNode>, gens: IrOutput[]): NonNullable<Manifest['text']['vocab_sizes']> {
  const out: NonNullable<Manifest['text']['vocab_sizes']> = {};
  for (const r of textReaders(model, nodes, gens.length ? nodes.get(gens[0].args[0]) : undefined)) {
    if (typeof r.attrs.vocab_size !== 'number') continue;
    const path = textPath(r);
    out[path] = Math.min(out[path] ?? Infinity, r.attrs.vocab_size);
  }
  return out;
}

/** The nodes besides the generating one that read a text input of the model. */
function textReaders(model: IrModel, nodes: Map<string, ResolvedNode>, gen: ResolvedNode | undefined): ResolvedNode[] {
  const textInputs = new Set(model.inputs.filter((i) => i.type === 'text').map((i) => i.name));
  return [...nodes.values()].filter((r) => r !== gen && r.node.edges.some((e) => textInputs.has(e.from)));
}

/**
 * The manifest's name for the text a node reads: `qformer_text` for a Q-Former, a kind with an
 * 'instruction' port (the role Lowerer.input gives the Q-Former's own tokenizer), whichever port
 * its text comes by (BLIP-2 retrieval reads it through its 'retrieval-text' port, `text:`); `text`
 * for a text encoder.
 */
function textPath(r: ResolvedNode): 'text' | 'qformer_text' {
  return portWith(r.kind, 'instruction') !== undefined ? 'qformer_text' : 'text';
}

/** Where --out is: itself, or where it points when it is a symbolic link (`current/` included, or a link to a folder not made yet). */
function outputFolder(given: string): string {
  const path = resolve(given); // (resolve drops a trailing slash, through which lstat would follow the link)
  try {
    if (!lstatSync(path).isSymbolicLink()) return path;
  } catch {
    return path;
  }
  return existsSync(path) ? realpathSync(path) : resolve(dirname(path), readlinkSync(path));
}

/**
 * BLIP4016 unless the existing `out` may be replaced: an empty folder, or a compiled model (a
 * manifest.json that is blip-graph's: a file merely named so is someone else's) that does not hold
 * what is being compiled. The swap deletes the old `out` whole, so a checkpoint inside it (or the
 * checkpoint folder itself given as --out) would be lost; an --out inside the checkpoint is fine.
 */
function refuseToReplace(given: string, out: string, sources: string[]): void {
  if (!statSync(out).isDirectory()) throw new CompileError('BLIP4016', `${given} exists and is not a folder; remove it or choose another --out`);
  const entries = readdirSync(out);
  if (entries.length === 0) return;
  const manifestPath = join(out, MANIFEST_FILE);
  if (!entries.includes(MANIFEST_FILE)) throw new CompileError('BLIP4016', `${given} exists and is not a compiled model (no ${MANIFEST_FILE}); remove it or choose another --out`);
  const read = readJsonFile(manifestPath);
  const format = read.problem === undefined && typeof read.value === 'object' && read.value !== null ? (read.value as Record<string, unknown>).format : undefined;
  if (format !== MANIFEST_FORMAT) {
    const why = read.problem !== undefined ? `${MANIFEST_FILE} ${read.problem}` : `its ${MANIFEST_FILE} is not blip-graph's (format ${format === undefined ? 'missing' : JSON.stringify(format)}, "${MANIFEST_FORMAT}" expected)`;
    throw new CompileError('BLIP4016', `${given} exists and is not a compiled model: ${why}; remove it or choose another --out`);
  }
  const real = realpathSync(out);
  for (const s of sources) {
    let r: string;
    try {
      r = realpathSync(s);
    } catch {
      continue; // (a file the checkpoint did not have: nothing of it to lose)
    }
    const rel = relative(real, r);
    if (rel === '' || (rel !== '..' && !rel.startsWith('..' + sep) && !isAbsolute(rel))) {
      throw new CompileError('BLIP4016', `${given} holds the checkpoint being compiled (${s}); replacing it would delete the checkpoint: choose another --out`);
    }
  }
}

/** Write everything into OUT.tmp-<pid>-<call>, the manifest last, then move it into place. */
async function writeArtifact(opts: CompileOptions, x: Built): Promise<Omit<CompileResult, 'rewrites'>> {
  // an --out that is a symbolic link (current -> models/v3) is written where it points: the
  // swap-in rename would otherwise replace the link and leave its target stale
  const out = outputFolder(opts.out);
  if (existsSync(out)) refuseToReplace(opts.out, out, [x.ckpt.dir, opts.weights, ...x.ckpt.fileNames]);
  const warnings = removeStaleLeftovers(out).map((p) => `removed ${p}, left by a compile that was killed`);
  // (a quantized build's products are MatMulNBits over the packed weights: none of this applies)
  if (x.store.floatType === 'float16' && (opts.target ?? 'plain') === 'cpu' && !opts.quantize) {
    warnings.push('float16 for the CPU target saves disk only: onnxruntime\'s CPU provider runs the matrix products in float32 with converted copies of the weights (more memory than --dtype fp32, no faster); fp16 is for cuda and webgpu, --quantize int8 makes CPU weights smaller');
  }
  // What config.json / generation_config.json put in the manifest, checked before the weights are
  // written: the runtime refuses a manifest that fails its schema.
  const task: Manifest['task'] = x.rets.length ? 'retrieval' : x.encodeTakesText ? 'vqa' : 'caption';
  // the special ids and prompt layout are the generating node's: its kind and its config section
  const gen = x.gens.length ? opts.model.nodes.find((n) => n.name === x.gens[0]!.args[0]) : undefined;
  const genNode = gen && { kind: gen.kind, ...(gen.config !== undefined ? { section: gen.config } : {}), loc: x.gens[0]!.loc };
  const text: Manifest['text'] = {
    ...textConventionsFor(x.family, x.ckpt.config, task, genNode, x.prefixLength),
    ...(Object.keys(x.limits).length ? { max_positions: x.limits } : {}),
    ...(x.decoderFacts && x.maxPositionEmbeddings !== undefined ? { max_position_embeddings: x.maxPositionEmbeddings } : {}),
    ...(Object.keys(x.vocabs).length ? { vocab_sizes: x.vocabs } : {}),
    ...(x.decoderFacts && !x.takesPrompt ? { takes_prompt: false as const } : {}),
    ...(x.decoderFacts && !x.llmPrompt ? { llm_prompt: false as const } : {}),
  };
  const generation = x.decoderFacts ? generationFor(opts.model, x.ckpt) : undefined;
  if (generation?.prompt !== undefined && text.takes_prompt === false) {
    warnings.push(`the generation block's prompt "${generation.prompt}" is left out: model "${opts.model.name}" reads no text input, so it takes no prompt`);
    delete generation.prompt;
    delete generation.source.prompt;
  }
  const preprocess = preprocessFor(opts.model, x.ckpt, x.imageSize);
  const valueProblems = manifestValueProblems(preprocess, x.imageSize, text, generation, x.decoderFacts?.vocab, x.gens[0]?.loc ?? opts.model.outputs[0]?.loc, warnings, textDefaults(x.ckpt.config, textSectionOf(genNode)), textSectionOf(genNode), opts.model.preprocessLocs);
  if (valueProblems.length) throw new CompileError(valueProblems);
  const refusedLength = defaultLengthRefused(opts.model, text, generation, startTokens(text, x.fromEncode.some((n) => n.startsWith('cross.')), x.prefixLength));
  if (refusedLength) warnings.push(refusedLength);
  // No tokenizer, no model to run: load() refuses an artifact without one (prompts are read and
  // answers written with it), and InstructBLIP's Q-Former reads the instruction through its own.
  // A warning, not an error: the graphs themselves are whole (benchmarks compile random-weight
  // checkpoints that have no tokenizer and run the sessions directly).
  const needed: Array<[string, string]> = [[x.ckpt.dir, 'blip run and load() refuse the compiled model without one (prompts are read and text written with it)']];
  if (x.family === 'instructblip') needed.push([join(x.ckpt.dir, 'qformer_tokenizer'), "generate() refuses the compiled model without it (InstructBLIP's Q-Former reads the instruction with it)"]);
  for (const [dir, why] of needed) {
    if (hasTokenizer(dir)) continue;
    const partial = TOKENIZER_FILES.filter((f) => existsSync(join(dir, f)));
    const only = partial.length ? ` (only ${partial.join(', ')}, which no tokenizer is built from)` : '';
    warnings.push(`${dir} has no tokenizer files (tokenizer.json, tokenizer.model, vocab.txt, …)${only}: ${why}; copy them from the checkpoint's repository and compile again`);
  }
  // The tokenizers are copied as they are: built once here, so that one `blip run` could not load
  // is refused now rather than after the weights are written.
  for (const dir of [x.ckpt.dir, join(x.ckpt.dir, 'qformer_tokenizer')]) {
    if (!hasTokenizer(dir)) continue;
    try {
      loadTokenizer(dir);
    } catch (e) {
      if (e instanceof TokenizerLoadError) throw new CompileError('BLIP4001', `${e.message}; blip run could not tokenize with it`);
      throw e;
    }
  }
  opts.signal?.throwIfAborted();
  const call = compileCall(); // this compile's own folders: another compile() to `out` in this process has its own
  const tmp = partialOutputPath(out, call);
  try {
    rmSync(tmp, { recursive: true, force: true });
    makeDirectories(tmp);
    markPartialOutput(tmp);
  } catch (e) {
    throw outputError(e, opts.out, tmp);
  }
  try {
    const referenced = new Set(x.graphs.flatMap((g) => [...g.weightNames]));
    const weightsBytes = await x.store.writeAll(join(tmp, WEIGHTS_FILE), referenced, opts.onProgress, opts.signal);
    for (const [key, { nan, infinite }] of x.ckpt.nonFinite) {
      const what = [nan ? `${nan} NaN value${nan === 1 ? '' : 's'}` : '', infinite ? `${infinite} infinite value${infinite === 1 ? '' : 's'}` : ''].filter(Boolean).join(' and ');
      warnings.push(`checkpoint tensor ${key} has ${what}: the checkpoint is corrupt there, and the model's outputs will be NaN`);
    }
    for (const [key, n] of x.store.halfOverflow) {
      warnings.push(`weight ${key} has ${n} value${n === 1 ? '' : 's'} beyond float16's range (±65504), stored as infinite by --dtype fp16: the model's outputs may be NaN; compile it with --dtype fp32`);
    }
    const entries: Manifest['graphs'] = {};
    const written: CompileResult['graphs'] = [];
    for (const g of x.graphs) {
      const file = `${g.name}.onnx`;
      const bytes = encodeModel(toModelProto(g, x.store, { dataFile: WEIGHTS_FILE, producerVersion: VERSION, docString: `${x.family} ${g.name} graph of ${opts.model.name}` }));
      writeFileSync(join(tmp, file), bytes);
      const entry: GraphEntry = { file, inputs: g.inputs.map(tensorIO), outputs: g.outputs.map(tensorIO), nodes: g.nodes.length };
      entries[g.name as keyof Manifest['graphs']] = entry;
      written.push({ name: g.name, file, nodes: g.nodes.length, bytes: bytes.length });
    }

    const tokFiles = hasTokenizer(x.ckpt.dir) ? TOKENIZER_FILES.filter((f) => existsSync(join(x.ckpt.dir, f))) : [];
    if (tokFiles.length) {
      mkdirSync(join(tmp, 'tokenizer'));
      for (const f of tokFiles) copyFileSync(join(x.ckpt.dir, f), join(tmp, 'tokenizer', f));
    }
    const qDir = join(x.ckpt.dir, 'qformer_tokenizer');
    const qFiles = hasTokenizer(qDir) ? TOKENIZER_FILES.filter((f) => existsSync(join(qDir, f))) : [];
    if (qFiles.length) {
      mkdirSync(join(tmp, 'qformer_tokenizer'));
      for (const f of qFiles) copyFileSync(join(qDir, f), join(tmp, 'qformer_tokenizer', f));
    }

    const params = x.parameters;
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      compiler: { name: 'blip-graph', version: VERSION },
      model: opts.model.name,
      family: x.family,
      task,
      dtype: x.store.floatType,
      ...(opts.target && opts.target !== 'plain' ? { target: opts.target } : {}),
      ...(opts.quantize ? { quantize: opts.quantize } : {}),
      outputs: opts.model.outputs.map((o) => ({ name: o.name, task: o.task, graph: o.task === 'generate' ? 'decoder' : 'retrieval' })),
      graphs: entries,
      weights: { file: WEIGHTS_FILE, bytes: weightsBytes, tensors: referenced.size, parameters: params },
      preprocess,
      text,
      source: {
        graph: { file: opts.graphFile, sha256: createHash('sha256').update(opts.graphText).digest('hex') },
        checkpoint: { dir: opts.weights, fingerprint: x.ckpt.fingerprint(), files: x.ckpt.fileNames.map((f) => basename(f)), dtypes: x.ckpt.dtypes() },
      },
    };
    if (tokFiles.length) manifest.tokenizer = { dir: 'tokenizer', files: tokFiles };
    if (qFiles.length) manifest.qformer_tokenizer = { dir: 'qformer_tokenizer', files: qFiles };
    if (x.decoderFacts && entries.decoder) {
      const f = x.decoderFacts;
      manifest.decoder = {
        layers: f.layers,
        kv_heads: f.kvHeads,
        head_dim: f.headDim,
        hidden_size: f.hidden,
        vocab_size: f.vocab,
        inputs: entries.decoder.inputs.map((i) => i.name),
        from_encode: x.fromEncode,
        positions: f.positions,
        cross_attention: x.fromEncode.some((n) => n.startsWith('cross.')),
      };
      // Every cross-attending step attends through QueryGroups (checked where it is lowered).
      if (manifest.decoder.cross_attention) manifest.decoder.cross_rows = 'grouped';
      manifest.generation = generation;
    }
    if (x.rets.some((o) => o.task === 'itm')) manifest.itm = { match_index: 1 };
    // Never an artifact that `blip run` would refuse: anything left here is the compiler's own bug.
    const invalid = manifestErrors(manifest);
    if (invalid.length) throw new Error(`the manifest would not validate: ${invalid.join('; ')}`);
    writeFileSync(join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');

    opts.signal?.throwIfAborted();
    unmarkPartialOutput(tmp);
    swapIntoPlace(tmp, out, replacedOutputPath(out, call));
    return { out, manifest, parameters: params, graphs: written, weightsBytes, seconds: (Date.now() - x.t0) / 1000, warnings };
  } catch (e) {
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      // the error below is the one to report; a folder that cannot be removed is named by it
    }
    throw outputError(e, opts.out, tmp);
  }
}

/**
 * The tokens generate()'s loop starts from when no prompt is given, as runtime/tasks/generate.ts
 * buildInputs builds them: `counted`, those a max_length counts (transformers' input_ids), and
 * `positions`, the decoder positions they take. BLIP's decoder and T5's start from one token
 * ([DEC], decoder_start_token_id; a question or prompt goes to an encoder); a decoder-only LLM
 * from its image placeholders and BOS, or, with no image token (older BLIP-2 checkpoints), from
 * nothing max_length counts, the visual prefix and BOS fed at prefill.
 */
function startTokens(text: Manifest['text'], crossAttention: boolean, prefixLength: number | undefined): { counted: number; positions: number; what: string } {
  if (text.prompt_format === 'blip' || crossAttention) return { counted: 1, positions: 1, what: "decoder's start token" };
  const prefix = prefixLength ?? text.num_query_tokens ?? 0;
  if (text.image_token_id !== undefined) return { counted: prefix + 1, positions: prefix + 1, what: `${prefix} image placeholders and BOS` };
  return { counted: 0, positions: prefix + 1, what: '' };
}

/**
 * A default length that every run keeping it would refuse, said at compile (at the generation
 * block's line) rather than at every run: a max_new_tokens, or a max_length, beyond the decoder's
 * learned positions even without a prompt (the start tokens and every new token but the last take
 * one each; BLIP5032), or a max_length the start tokens already fill (BLIP5030). Kept, as
 * transformers keeps a generation config's lengths (it runs until its position table runs out, an
 * IndexError, or refuses the input, a ValueError).
 */
function defaultLengthRefused(model: IrModel, text: Manifest['text'], generation: Manifest['generation'], start: { counted: number; positions: number; what: string }): string | undefined {
  if (!generation) return undefined;
  const limit = text.max_positions?.decoder;
  const key = generation.max_new_tokens !== undefined ? 'max_new_tokens' : 'max_length';
  const value = generation[key];
  const source = generation.source[key];
  // (transformers' default max_length is not a default of the model's: the runtime caps it at the positions)
  if (value === undefined || (source !== 'graph' && source !== 'generation_config.json')) return undefined;
  const at = source === 'graph' ? model.generationLocs[key] : undefined;
  const setting = `${at ? `${at.file}:${at.line}:${at.column}: ` : ''}${source === 'graph' ? "the generation block's" : "generation_config.json's"} ${key} ${value}`;
  const refused = (code: string) => `every run that keeps this default is refused (${code}), with or without a prompt`;
  const prefix = start.positions - 1;
  if (key === 'max_new_tokens') {
    if (limit === undefined || prefix + value <= limit) return undefined;
    const fit = limit - prefix;
    return `${setting}${prefix ? ` after the ${prefix}-position visual prefix` : ''} exceeds the decoder's ${limit} positions: ${refused('BLIP5032')}; at most ${fit} new token${fit === 1 ? '' : 's'} fit without a prompt, fewer with one`;
  }
  if (value <= start.counted) {
    return `${setting} leaves no room for a new token: it counts the ${start.what} every run starts from (${start.counted} token${start.counted === 1 ? '' : 's'}), so ${refused('BLIP5030')}; give a max_length above ${start.counted}, or max_new_tokens`;
  }
  // the new tokens are max_length less what it counts; with a prompt it counts more of them, or (a
  // legacy prefix: it counts none) the prompt's positions come on top
  if (limit === undefined || start.positions + (value - start.counted) - 1 <= limit) return undefined;
  const fit = limit + 1 + start.counted - start.positions;
  return `${setting} exceeds the decoder's ${limit} positions: ${refused('BLIP5032')}; a max_length of at most ${fit} fits${start.counted ? '' : ' without a prompt, less with one'}`;
}

/** A file-system error while writing `--out` as a one-line BLIP4018 (others pass through). */
function outputError(e: unknown, out: string, tmp: string): unknown {
  if (!isSystemError(e)) return e;
  const ours = !e.path || e.path.startsWith(tmp) || e.path.startsWith(resolve(out));
  return new CompileError('BLIP4018', ours ? `cannot write the compiled model to ${out}: ${systemErrorMeaning(e)}${e.path ? ` at ${e.path}` : ''}` : systemErrorLine(e));
}
