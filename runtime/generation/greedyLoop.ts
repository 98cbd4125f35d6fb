// Greedy decoding inside the graph, for the CPU: decoder.onnx (one step with a KV cache) is wrapped
// in an ONNX Loop whose body is the step itself and which chooses each next token (argmax; EOS
// banned for the first iterations when a minimum length asks for it), pads finished rows, stops when every row has hit an EOS id, and feeds the token, the grown attention
// mask and the present K/V to the next iteration. A host loop pays onnxruntime's
// per-run set-up and the Node binding's tensor conversions on every token (~2.5 ms of a ~15 ms
// BLIP-base step, docs/performance.md); in the graph that is paid once per call.
//
// The wrapped graph still is the step graph: with loop.max_steps = 1 it runs one step and returns
// its logits and present.* as before (beam search, sampling, logits processors), so one session —
// one copy of the prepacked weights — serves both. The step's nodes move into the Loop body
// unchanged, their initializers with them (GreedyLoopOptions); every name the body defines gets a
// `loop.` prefix, so nothing in it shadows the main graph.
import onnxProto from 'onnx-proto';
import { decodeFlatModel } from '../onnxModel.js';

const { onnx } = onnxProto;
type Model = onnxProto.onnx.ModelProto;
type Node = onnxProto.onnx.INodeProto;
type ValueInfo = onnxProto.onnx.IValueInfoProto;

/** Inputs the wrapped graph adds. */
export const LOOP = {
  /** int64 scalar: iterations at most (1: one plain step). */
  maxSteps: 'loop.max_steps',
  /** int64 (E): ids that finish a row (give [-1] for none). */
  eosIds: 'loop.eos_ids',
  /** int64 scalar: the token a finished row gets. */
  padId: 'loop.pad_id',
  /** bool (B): rows already finished. */
  finished: 'loop.finished',
  /** float (V, or 1): added to the logits before the argmax in the first loop.ban_steps iterations (-inf at EOS ids: min_length / min_new_tokens). */
  eosBan: 'loop.eos_ban',
  /** int64 scalar: iterations that add loop.eos_ban. */
  banSteps: 'loop.ban_steps',
  /** Output, int64 (iterations, B): the token chosen in each iteration. */
  tokens: 'loop.tokens',
} as const;

/** Whether a graph input or output name is one the Loop form adds (not the manifest's). */
export function isLoopName(name: string): boolean {
  return name.startsWith('loop.');
}

/**
 * Step inputs that change from one iteration to the next; every other input is the same for all
 * (cross.*, the image's mask). position_ids (BLIP's text decoder) go on from the last column's + 1.
 */
const CARRIED = ['input_ids', 'attention_mask', 'prefix_embeds', 'position_ids'] as const;

const INT64 = onnx.TensorProto.DataType.INT64;
const BOOL = onnx.TensorProto.DataType.BOOL;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function tensorType(elemType: number, dims?: Array<number | string>): onnxProto.onnx.ITypeProto {
  return { tensorType: { elemType, shape: dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined } };
}
const vi = (name: string, elemType: number, dims?: Array<number | string>): ValueInfo => ({ name, type: tensorType(elemType, dims) });
const node = (opType: string, input: string[], output: string[], attrs: onnxProto.onnx.IAttributeProto[] = []): Node => ({ opType, input, output, name: `loop/${opType}/${output[0]}`, attribute: attrs });
const ints = (name: string, v: number[]): onnxProto.onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
const int = (name: string, v: number): onnxProto.onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
const tensorAttr = (name: string, t: onnxProto.onnx.ITensorProto): onnxProto.onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.TENSOR, t });
const constant = (out: string, t: onnxProto.onnx.ITensorProto): Node => node('Constant', [], [out], [tensorAttr('value', t)]);

export interface GreedyLoopOptions {
  /**
   * The step's initializers become the Loop body's own (default true). False keeps them in the main
   * graph, read from the outer scope: onnxruntime 1.30 refuses a subgraph initializer whose
   * external-data file has more than one hard link ("potential hardlink attack"), which it does not
   * for the main graph's (runtime/session.ts decides).
   */
  weightsInBody?: boolean;
}

/**
 * The greedy-loop form of a step graph (model bytes), or undefined when the graph is not one this
 * can wrap: it has subgraphs already, no input_ids, no 2-D logits, a past.* without
 * its present.*, or an opset whose ReduceMax takes axes as an input (18+).
 */
export function wrapInGreedyLoop(bytes: Uint8Array, opts: GreedyLoopOptions = {}): Uint8Array | undefined {
  const model = decodeFlatModel(bytes);
  if (!model) return undefined;
  const g = model.graph!;
  // ReduceMax / ReduceMin take their axes as an attribute up to opset 17
  const opset = (model.opsetImport ?? []).find((o) => !o.domain)?.version;
  if (opset === undefined || opset === null || Number(opset) < 13 || Number(opset) > 17) return undefined;
  const nodes = g.node ?? [];
  const inputs = g.input ?? [];
  const outputs = g.output ?? [];
  const inputNames = inputs.map((i) => i.name ?? '');
  const outputNames = outputs.map((o) => o.name ?? '');
  if (!inputNames.includes('input_ids') || !outputNames.includes('logits') || inputNames.some((n) => n.startsWith('loop.'))) return undefined;
  const logitsDims = outputs.find((o) => o.name === 'logits')?.type?.tensorType?.shape?.dim;
  if (logitsDims && logitsDims.length !== 2) return undefined;
  const past = inputNames.filter((n) => n.startsWith('past.'));
  const present = past.map((p) => p.replace(/^past\./, 'present.'));
  if (present.some((p) => !outputNames.includes(p))) return undefined;
  const carried = [...CARRIED.filter((n) => inputNames.includes(n)), ...past];

  // The body: the step's nodes, with the carried inputs and every value they define renamed.
  const inner = new Map<string, string>(carried.map((n) => [n, `loop.in.${n}`]));
  for (const n of nodes) for (const o of n.output ?? []) if (o) inner.set(o, `loop.${o}`);
  const rename = (x: string): string => inner.get(x) ?? x;
  const body: Node[] = nodes.map((n) => ({ ...n, input: (n.input ?? []).map(rename), output: (n.output ?? []).map(rename) }));
  const L = (x: string): string => `loop/${x}`; // values this adds (renamed ones are loop.*)
  const logits = rename('logits');
  const mask = inner.get('attention_mask');
  const prefix = inner.get('prefix_embeds');
  const positions = inner.get('position_ids');
  body.push(
    constant(L('axis1'), { dataType: INT64, dims: [1], int64Data: [1] }),
    constant(L('no_ban'), { dataType: FLOAT, dims: [], floatData: [0] }),
    // min_length / min_new_tokens: EOS banned in the first iterations (the logits output is left as is)
    node('Less', [L('iter'), LOOP.banSteps], [L('banning')]),
    node('Where', [L('banning'), LOOP.eosBan, L('no_ban')], [L('ban')]),
    node('Add', [logits, L('ban')], [L('scores')]),
    // the next token of every row: argmax, or padding once the row has finished (as transformers);
    // a row finishes on an EOS id, and the loop stops when every row has
    node('ArgMax', [L('scores')], [L('argmax')], [int('axis', 1), int('keepdims', 0)]),
    node('Where', [L('in.finished'), LOOP.padId, L('argmax')], [L('next')]),
    node('Unsqueeze', [L('next'), L('axis1')], [L('next_ids')]),
    node('Equal', [L('next_ids'), LOOP.eosIds], [L('is_eos')]),
    node('Cast', [L('is_eos')], [L('is_eos_i')], [int('to', onnx.TensorProto.DataType.INT32)]),
    node('ReduceMax', [L('is_eos_i')], [L('hit_i')], [ints('axes', [1]), int('keepdims', 0)]),
    node('Cast', [L('hit_i')], [L('hit')], [int('to', BOOL)]),
    node('Or', [L('in.finished'), L('hit')], [L('finished')]),
    node('Cast', [L('finished')], [L('finished_i')], [int('to', onnx.TensorProto.DataType.INT32)]),
    node('ReduceMin', [L('finished_i')], [L('all_finished_i')], [ints('axes', [0]), int('keepdims', 0)]),
    node('Cast', [L('all_finished_i')], [L('all_finished')], [int('to', BOOL)]),
    node('Not', [L('all_finished')], [L('cond_out')]),
    node('Identity', [L('next')], [L('token')]),
  );
  const next: string[] = [L('next_ids')];
  if (mask) {
    body.push(
      node('Shape', [L('next_ids')], [L('col_shape')]),
      node('ConstantOfShape', [L('col_shape')], [L('ones')], [tensorAttr('value', { dataType: INT64, dims: [1], int64Data: [1] })]),
      node('Concat', [mask, L('ones')], [L('mask_next')], [int('axis', 1)]),
    );
    next.push(L('mask_next'));
  }
  if (prefix) {
    // the visual prefix goes in once, at the first iteration's step; empty afterwards
    body.push(
      constant(L('zero'), { dataType: INT64, dims: [1], int64Data: [0] }),
      node('Slice', [prefix, L('zero'), L('zero'), L('axis1')], [L('prefix_next')]),
    );
    next.push(L('prefix_next'));
  }
  // (the carried values in CARRIED's order: ids, mask, prefix, positions)
  if (positions) {
    // the next token's position: the last column's + 1, as generate() numbers them
    body.push(
      constant(L('last'), { dataType: INT64, dims: [1], int64Data: [-1] }),
      constant(L('end'), { dataType: INT64, dims: [1], int64Data: [1 << 30] }),
      constant(L('one'), { dataType: INT64, dims: [], int64Data: [1] }),
      node('Slice', [positions, L('last'), L('end'), L('axis1')], [L('last_position')]),
      node('Add', [L('last_position'), L('one')], [L('positions_next')]),
    );
    next.push(L('positions_next'));
  }
  // element types only: the carried values change shape from one iteration to the next
  const elem = (name: string): number => inputs.find((i) => i.name === name)?.type?.tensorType?.elemType ?? FLOAT;
  const bodyGraph: onnxProto.onnx.IGraphProto = {
    name: 'greedy_step',
    node: body,
    input: [vi(L('iter'), INT64, []), vi(L('cond_in'), BOOL, []), ...carried.map((n) => vi(inner.get(n)!, elem(n))), vi(L('in.finished'), BOOL), vi(L('in.logits'), FLOAT)],
    output: [vi(L('cond_out'), BOOL, []), ...next.map((n, i) => vi(n, elem(carried[i]))), ...past.map((p) => vi(rename(p.replace(/^past\./, 'present.')), elem(p))), vi(L('finished'), BOOL), vi(logits, FLOAT), vi(L('token'), INT64)],
  };
  if (opts.weightsInBody !== false) {
    // The weights move with the nodes that read them (nothing in the main graph does): onnxruntime's
    // layout passes rewrite a node's weight only when it is an initializer of the node's own graph
    // (its NCHWc pass leaves a 1×1 Conv over an outer-scope weight as a plain Conv between two
    // Transposes, PointwiseConvFusion's form, which is then slower than the MatMul it replaced).
    bodyGraph.initializer = g.initializer ?? [];
    g.initializer = [];
  }

  // The main graph: one Loop over the body; presents and logits are its final carried values.
  const main: Node[] = [
    constant(L('cond_init'), { dataType: BOOL, dims: [], int32Data: [1] }),
    constant(L('logits_init'), { dataType: FLOAT, dims: [0, 0], floatData: [] }),
    {
      opType: 'Loop',
      name: 'loop/greedy',
      input: [LOOP.maxSteps, L('cond_init'), ...carried, LOOP.finished, L('logits_init')],
      output: [...carried.filter((n) => !n.startsWith('past.')).map((n) => L(`final.${n}`)), ...present, L('final.finished'), 'logits', LOOP.tokens],
      attribute: [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: bodyGraph }],
    },
  ];
  g.node = main;
  g.input = [...inputs, vi(LOOP.maxSteps, INT64, []), vi(LOOP.eosIds, INT64, ['eos']), vi(LOOP.padId, INT64, []), vi(LOOP.finished, BOOL, ['batch']), vi(LOOP.eosBan, FLOAT, ['ban_width']), vi(LOOP.banSteps, INT64, [])];
  g.output = [...outputs, vi(LOOP.tokens, INT64, ['steps', 'batch'])];
  g.valueInfo = [];
  return onnx.ModelProto.encode(model).finish();
}

/**
 * Bytes of external-data initializers a graph file reads (its weights in weights.bin), from the
 * graph alone; 0 for bytes that are not a model.
 */
export function externalWeightBytes(bytes: Uint8Array): number {
  let model: Model;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch {
    return 0;
  }
  let total = 0;
  for (const t of model.graph?.initializer ?? []) {
    const length = (t.externalData ?? []).find((e) => e.key === 'length')?.value;
    if (length) total += Number(length);
  }
  return total;
}
