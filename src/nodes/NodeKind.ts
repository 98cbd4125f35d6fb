// What a node kind is. One kind per file in src/nodes/ (vit.ts, bert.ts, qformer.ts, linear.ts,
// mlp.ts, opt.ts, llama.ts, t5.ts, classifier.ts, embed.ts), registered in src/nodes/index.ts.
// A file holds everything about its kind: the attribute schema the checker validates, how the
// attributes are read from a HuggingFace config.json section (or tensor shapes), widths and size
// rules for the checks, what the compiler asks of it (reads the image? generates? learned
// positions?), the checkpoint tensors it reads, and its ONNX lowering.
//
// Adding a kind is adding its file, its line in src/nodes/index.ts, and its section in
// docs/language.md (a test compares them): the IR schema, the checks, blip graph, the compile and
// the manifest take the kinds from the registry and ask them through the hooks below, never by
// name (the SVG legend's order alone still names the shipped ones), and a port by what it is, its
// role (PortSpec.role: the soft prompt, the instruction ...), never by its name, which is what a
// `.blip` file writes and the kind's own: docs/architecture.md#adding-a-node-kind
import type { IrType, IrValue } from '../ir/types.js';
import type { NodeLowering } from '../lower/contract.js';

export type Attrs = Record<string, IrValue>;

/**
 * What a port is, which the checks, the compile and `blip graph` ask instead of its name (the name
 * is what a `.blip` file writes, the kind's own choice). A kind has each role on one port at most.
 * - 'image': the model's image, as pixels (vit).
 * - 'input': the features it transforms: position by position (linear, mlp: a `positionwise`
 *   kind's output has this input's positions) or pooled (classifier, embed); the input a kind
 *   sized by `fromShapes` takes its `in_width` from.
 * - 'text': text it reads as tokens: encodes, or continues when it generates (bert; an LLM's prompt).
 * - 'cross': features it cross-attends to (bert's cross:); a `queryOutputs` kind fed them outputs
 *   its learned query positions (the Q-Former's image features), without them a text-only pass.
 * - 'soft-prompt': features that enter as embeddings in front of the text (opt, llama: a
 *   decoder-only LLM's visual prefix, whose positions are the manifest's text.prefix_length; t5:
 *   before the encoder input).
 * - 'instruction': InstructBLIP's instruction beside the queries: the text is tokenized by the
 *   Q-Former's own tokenizer (qformer_input_ids), its kind's text is the manifest's `qformer_text`,
 *   and it pairs with an `instructblip` checkpoint (BLIP2033, BLIP2038, BLIP4019).
 * - 'retrieval-text': BLIP-2 retrieval's text beside the queries, for itm() and itc() (BLIP2038).
 */
export type PortRole = 'image' | 'input' | 'text' | 'cross' | 'soft-prompt' | 'instruction' | 'retrieval-text';

export interface PortSpec {
  /** '' is the first positional argument: `vit(image)`; others are named: `bert(text, cross: vision)`. */
  name: string;
  role: PortRole;
  accepts: IrType[];
  required: boolean;
  doc: string;
}

/** The name of the kind's port that is `role`, if it has one ('' for a positional one). */
export function portWith(kind: NodeKind | undefined, role: PortRole): string | undefined {
  return kind?.ports.find((p) => p.role === role)?.name;
}

/** The role of the kind's port named `port`, if the kind has such a port. */
export function roleOf(kind: NodeKind | undefined, port: string): PortRole | undefined {
  return kind?.ports.find((p) => p.name === port)?.role;
}

/** A JSON Schema (draft 2020-12 subset understood by ajv) for the pinned attributes. */
export type JsonSchema = Record<string, unknown>;

export interface NodeKind {
  kind: string;
  /** One sentence: the kind's description, which docs/language.md's section on it starts with (a test compares them). */
  doc: string;
  ports: PortSpec[];
  /**
   * What the node's output is. 'logits' are a decoder's next-token logits when the kind
   * `generates`, else class logits over pooled features, one row per example (classifier: what
   * itm() reads, class 1 "match"); 'embedding' is an L2-normalised embedding (embed: what
   * itc() compares). The output tasks take their arguments by these (src/checks/OutputTasksRule.ts).
   */
  output: IrType;
  /** Attributes a `.blip` file may pin; every property optional, `additionalProperties: false`. */
  attrSchema: JsonSchema;
  /** config.json section read when the node doesn't say `config: "..."` (e.g. "vision_config"). */
  defaultConfig?: string;
  /**
   * The `model_type`s its config section may name; another is another model, which the compile
   * refuses before sizing anything (BLIP4019, src/lower/pairing.ts): the language models share the
   * `language_model` prefix, so the section's model_type is what tells a T5 checkpoint from an OPT
   * one, and vit's vision_config is one of the BLIP families' vision models, not SigLIP's.
   */
  modelTypes?: string[];
  /**
   * Attributes from a HuggingFace config section (`root` is the whole config.json, for keys such
   * as BLIP-2's top-level `num_query_tokens`). Keys must be attrSchema property names.
   */
  fromConfig?(section: Record<string, unknown>, root: Record<string, unknown>): Attrs;
  /** Attributes derived from checkpoint tensor shapes (for kinds with no config section: linear, mlp, heads). */
  fromShapes?(shape: (key: string) => number[] | undefined, prefix: string): Attrs;
  /** The tensors fromShapes reads, for a message naming what a checkpoint lacks ("weight [out, in], bias"). */
  layout?: string;
  /** Width of the output features, when the attributes (pinned or resolved) determine it. */
  outputWidth(attrs: Attrs): number | undefined;
  /** Width a port expects to receive, when known (checked against the producer's outputWidth). */
  inputWidth?(port: string, attrs: Attrs): number | undefined;
  /**
   * Attributes that must divide others: `{ part: 'heads', whole: 'width' }` (the width splits into
   * heads), skipped when `unless` is given (llama's explicit head_dim). Checked on the pinned
   * attributes (BLIP2041) and on those the compile resolves (src/checks/NodeSizesRule.ts).
   */
  divides?: Array<{ part: string; whole: string; unless?: string }>;
  /**
   * For a kind that reads the `image` input: the side of the square image it takes, when the
   * attributes give it. The compiled model's pixel_values are that size, and the encode graph's
   * `image_embeds` are the output of the node that reads the image (vit).
   */
  imageSize?(attrs: Attrs): number | undefined;
  /**
   * Whether its nodes are text decoders that `generate()` can drive: `true` (opt, llama, t5), or
   * `{ when }`, the boolean attribute that makes a node one when pinned true (bert: causal). The
   * check (BLIP2026) and its message take the decoders from this; compiling one needs
   * `lowering.decoder` too.
   */
  generates?: true | { when: string };
  /**
   * How a prompt is laid out for its nodes when they drive generate(), the manifest's
   * text.prompt_format: 'blip' for BLIP's BERT text decoder (bert; BlipTextLMHeadModel): the
   * prompt follows bos_token_id ([DEC], in place of [CLS]), its trailing [SEP] is dropped and
   * generation stops on sep_token_id, the ids from the node's config section with BlipTextConfig's
   * defaults. Absent: 'plain', a language model's (the tokenizer's ids and its config's special
   * ids, after the visual prefix or into the T5 encoder). src/lower/conventions.ts
   */
  promptFormat?: 'blip';
  /**
   * Its `max_positions` is a table of learned positions (bert, qformer, opt), a hard limit on the
   * text it reads: the compile records it in the manifest (text.max_positions), and the runtime
   * refuses longer text (BLIP5032) rather than fail in onnxruntime's Gather. Rotary (llama) and
   * relative (t5) positions have no such limit (llama's context length still caps the default
   * length: `maxPositionEmbeddings`).
   */
  learnedPositions?: boolean;
  /**
   * For a kind that `generates`: its config's max_position_embeddings, from its attributes, where
   * transformers caps the default length (the prompt and 20 new tokens, when nothing sets a
   * length: the manifest's text.max_position_embeddings). bert's and opt's learned position
   * table; llama's context length, which caps the default though rotary positions have no table
   * and run past it (no BLIP5032). Absent, or undefined: the default is not capped (t5's relative
   * positions; T5Config has no such key, and transformers then leaves it uncapped).
   */
  maxPositionEmbeddings?(attrs: Attrs): number | undefined;
  /**
   * Its nodes fed image features (through its `cross` port) output a fixed set of learned query
   * positions (the Q-Former), what `pool: queries` (embed) and `pool: mean_queries` (classifier)
   * pool and `pool: cls` does not (BLIP2037); one without image features is a text-only pass over
   * text tokens. Text beside the queries through its `retrieval-text` port is BLIP-2 retrieval's;
   * a generating one reads its `instruction` port (BLIP2038).
   */
  queryOutputs?: boolean;
  /**
   * It maps each position on its own (linear, mlp): its output has its input's positions, so
   * what holds of the positions it reads (query outputs, for BLIP2037) holds of its output.
   */
  positionwise?: boolean;
  /**
   * How many positions its output has, when its attributes fix that: a vit's 1 + grid², a
   * Q-Former's queries (with image features). The manifest's text.prefix_length, the positions a
   * decoder-only LLM's visual prefix takes, comes from it (src/lower/prefixLength.ts).
   */
  outputLength?(attrs: Attrs): number | undefined;
  /**
   * The line of sizes `blip graph` draws in its nodes' boxes (src/draw/describe.ts), from the
   * attributes (pinned, or resolved with --weights; `shown` from ./schema.ts draws an unknown one
   * as '?') and the ports a node connects: a projection's `in → out`, T5's encoder+decoder depth,
   * a Q-Former's queries. A kind without it is drawn as `width W · depth D`.
   */
  drawnSizes?(attrs: Attrs, connected: (port: string) => boolean): string;
  /** How the kind lowers to ONNX and which checkpoint tensors it reads (src/lower/contract.ts). */
  lowering?: NodeLowering;
}
