// The lowering contract between the compile driver (src/lower/compile.ts) and the node kinds
// (src/nodes/*.ts, field `lowering` of NodeKind).
//
// The driver resolves each node's attributes, decides which ONNX graph the node goes into, and
// hands the kind a LowerContext plus the lowered values of its input ports (Flows). The kind emits
// ONNX nodes through ctx.b (a GraphBuilder) and reads checkpoint tensors through ctx.param, which
// checks each tensor's presence and shape and records that it was consumed (parameter coverage).
//
//   once-per-input nodes (encode.onnx / retrieval.onnx)   lowering.lower(ctx, inputs) -> Flow
//   the generating node (generate(x))                     lowering.decoder:
//       facts(ctx)          cache geometry and position convention, for the manifest and the inputs
//       encode(ctx, inputs) its once-per-input part, lowered into encode.onnx (cross K/V, prefix)
//       step(ctx, io)       one decoder step with a KV cache, lowered into decoder.onnx
//
// Shapes below: B batch, S new tokens, P past tokens, T = P (+ Qp) + S, L cross length,
// N heads, Nkv key/value heads, D head size, W width.
import type { IrNode, SourceLoc } from '../ir/types.js';
import type { Attrs } from '../nodes/NodeKind.js';
import type { GraphBuilder, Value } from './GraphBuilder.js';
import type { QueryGroups } from './transformer.js';

/** An image: pixel values (B, 3, S, S) in the graph's float type, normalised. */
export interface ImageFlow {
  type: 'image';
  pixels: Value;
}
/** Token ids and their padding mask, (B, S) int64 each (1 = token, 0 = padding). */
export interface TextFlow {
  type: 'text';
  ids: Value;
  mask: Value;
}
/** A sequence of hidden states (B, T, W); `mask` (B, T) int64, absent when every position is valid. */
export interface FeaturesFlow {
  type: 'features';
  hidden: Value;
  mask?: Value;
}
/** L2-normalised embeddings (B, E), or (B, Q, E) per query. */
export interface EmbeddingFlow {
  type: 'embedding';
  embeds: Value;
  /** (B, Q, E): one embedding per query (BLIP-2); a similarity is the best query's. */
  perQuery?: boolean;
}
/** Classification logits (B, C). */
export interface LogitsFlow {
  type: 'logits';
  logits: Value;
}
export type Flow = ImageFlow | TextFlow | FeaturesFlow | EmbeddingFlow | LogitsFlow;

export interface ParamOptions {
  /**
   * Store the (out, in) PyTorch linear weight transposed to (in, out) for MatMul. The initializer
   * is then named `<checkpoint key>:T`.
   */
  transpose?: boolean;
  /** Why the tensor is needed, said when the checkpoint lacks it. */
  neededBecause?: string;
}

export interface LowerContext {
  /** The graph under construction (encode, decoder or retrieval). */
  readonly b: GraphBuilder;
  readonly node: IrNode;
  /** Resolved attributes: pinned in the file, else from config.json / tensor shapes, else kind defaults. */
  readonly attrs: Attrs;
  /** Which graph is being built. */
  readonly graph: 'encode' | 'decoder' | 'retrieval';
  /**
   * The checkpoint tensor `<node.checkpoint>.<name>`, expected to have PyTorch shape `shape`.
   * A missing tensor or a shape mismatch is reported (tensor, node, graph line) and lowering goes
   * on with a placeholder, so that every problem is reported at once.
   */
  param(name: string, shape: number[], opts?: ParamOptions): Value;
  /** Whether the checkpoint has `<node.checkpoint>.<name>` (for optional tensors such as biases). */
  has(name: string): boolean;
  /**
   * Whether transformers keeps the checkpoint tensor `<node.checkpoint>.<name>` in float32 when it
   * loads the model in float16: a keep-in-float32 name of the checkpoint's model is found in the
   * tensor's name (./keepFloat32.ts; InstructBLIP-Flan-T5's `qformer.embeddings.word_embeddings`).
   */
  keptFloat32(name: string): boolean;
  /** Resolved attribute accessors; an attribute nobody set is a BLIP4014 error at the node. */
  int(attr: string): number;
  num(attr: string): number;
  str(attr: string): string;
  bool(attr: string): boolean;
  /** Where attribute `attr` is written in the .blip file (the node's location when it is not). */
  attrLoc(attr: string): SourceLoc;
  /** Whether the node's port has an edge (`cross`, ``). */
  connected(port: string): boolean;
}

/** One layer's key and value, (B, N, len, D). */
export interface KV {
  key: Value;
  value: Value;
}

export interface DecoderFacts {
  layers: number;
  kvHeads: number;
  headDim: number;
  hidden: number;
  vocab: number;
  /** See Manifest.decoder.positions. */
  positions: 'past_length' | 'attention_mask' | 'input';
  /** Width of `prefix_embeds` when it is not `hidden` (an OPT whose token embeddings are narrower). */
  prefixWidth?: number;
}

/** What a generating node's once-per-input part hands to its step graph (via encode.onnx outputs). */
export interface EncodeSide {
  /** Per-layer cross-attention keys/values (B, N, L, D) → `cross.{i}.key|value`. */
  cross?: KV[];
  /** (B, L) int64 → `cross_attention_mask`. */
  crossMask?: Value;
  /** (B, Q, H) soft visual prompt → `prefix_embeds`. */
  prefix?: Value;
}

export interface StepInputs {
  /** (B, S) int64. */
  ids: Value;
  /** (B, T) int64: past, prefix and current positions. */
  mask: Value;
  /** Per-layer past keys/values (B, Nkv, P, D); P = 0 at prefill. */
  past: KV[];
  /** Per-layer cross keys/values, (I, N, L, D) for I encoded rows; B = I·G decoder rows. */
  cross?: KV[];
  /** (I, L) int64. */
  crossMask?: Value;
  /** With `cross`: the cross-attention's queries must go through it ((B, L, W) <-> (I, G·L, W)). */
  crossGroups?: QueryGroups;
  /** (B, Qp, H); Qp = Q at prefill, 0 afterwards. */
  prefix?: Value;
  /** (B, Qp + S) int64, when facts.positions is 'input'. */
  positions?: Value;
}

export interface StepOutputs {
  /** (B, V) float: the last position's logits. */
  logits: Value;
  /** Per-layer (B, Nkv, T, D). */
  present: KV[];
}

export interface DecoderLowering {
  /**
   * The node's text port belongs to encode.onnx (an encoder-decoder LLM's encoder prompt: T5)
   * rather than to decoder.onnx's input_ids (a decoder-only LLM's prompt).
   */
  textInEncode?: boolean;
  facts(ctx: LowerContext): DecoderFacts;
  /** The once-per-input part, lowered into encode.onnx from the node's non-text ports. */
  encode(ctx: LowerContext, inputs: Record<string, Flow>): EncodeSide;
  /** One step, lowered into decoder.onnx. */
  step(ctx: LowerContext, io: StepInputs): StepOutputs;
}

export interface NodeLowering {
  /** Once-per-input lowering: the lowered values of the connected ports ('' = positional) → the output. */
  lower?(ctx: LowerContext, inputs: Record<string, Flow>): Flow;
  /** Present on kinds that `generate(...)` can drive. */
  decoder?: DecoderLowering;
  /**
   * Checkpoint tensors under the node's prefix that the kind deliberately does not read (relative
   * names, matched in full): buffers such as `position_ids`, tied copies, parts of a checkpoint this
   * use of the node does not need. Anything else unread under any prefix is an "unexpected tensor".
   */
  ignored?(attrs: Attrs, connected: (port: string) => boolean): RegExp[];
  /**
   * Tensors the kind reads beside its prefix (`../name`, relative to the prefix's parent), matched
   * in full: a node no output needs leaves them unread without an error, as it does those under
   * its prefix (BLIP-2's query_tokens when a graph bypasses the Q-Former).
   */
  beside?: RegExp[];
  /** Attribute defaults when neither the file nor the checkpoint says (e.g. `causal: false`). */
  defaults?: Attrs;
}
