// The checked intermediate representation: what the front end (grammar/ + src/syntax + src/checks)
// hands to the compiler (src/lower). Plain JSON data, described by src/ir/schema/*.json (ajv).
//
// A `.blip` model becomes one IrModel: named inputs, nodes in topological order, outputs (tasks),
// and optional preprocessing / generation blocks. Attributes written in the file are kept as
// written ("pinned"); attributes left out are filled from the checkpoint's config.json at compile
// time by the node kind's `resolve` (src/nodes/*.ts).

/** A position in a source file: 1-based line/column, 0-based end-exclusive offsets. */
export interface SourceLoc {
  file: string;
  line: number;
  column: number;
  start: number;
  end: number;
}

export type IrValue = number | string | boolean | IrValue[];

/** What flows along an edge. `features` = a (B, T, width) sequence of hidden states. */
export type IrType = 'image' | 'text' | 'features' | 'embedding' | 'logits';

export interface IrInput {
  name: string;
  type: 'image' | 'text';
  loc: SourceLoc;
}

export interface IrEdge {
  /** The port of the consuming node ("" for the first positional argument). */
  port: string;
  /** The producing node or model input. */
  from: string;
  loc: SourceLoc;
}

export interface IrNode {
  name: string;
  /** Node kind: a key of the registry, src/nodes/index.ts (vit, qformer, opt, …). */
  kind: string;
  edges: IrEdge[];
  /** Checkpoint tensor-name prefix this node reads ("vision_model", "qformer", ...). */
  checkpoint: string;
  /**
   * The config.json section the node's attributes are read from (`config: "..."` in the file, else
   * the kind's defaultConfig; "" is the top level of config.json). Absent for kinds with no section (linear, mlp, classifier, embed).
   */
  config?: string;
  /** Attributes pinned in the file (everything else comes from config.json at compile time). */
  attrs: Record<string, IrValue>;
  frozen: boolean;
  loc: SourceLoc;
  /** Where each attribute was written, for diagnostics at compile time. */
  attrLocs: Record<string, SourceLoc>;
}

/** generate: text generation from a decoder node; itm / itc: retrieval scores; embed: ITC embeddings. */
export type IrTaskKind = 'generate' | 'itm' | 'itc';

export interface IrOutput {
  name: string;
  task: IrTaskKind;
  /** Argument nodes of the task: generate(llm), itm(head), itc(image_proj, text_proj). */
  args: string[];
  loc: SourceLoc;
}

export interface IrPreprocess {
  image_size?: number;
  mean?: number[];
  std?: number[];
  resample?: 'nearest' | 'bilinear' | 'bicubic' | 'lanczos';
  rescale_factor?: number;
  do_normalize?: boolean;
  do_convert_rgb?: boolean;
}

export interface IrGeneration {
  max_new_tokens?: number;
  /** The whole sequence, as transformers' max_length counts it; max_new_tokens wins over it. */
  max_length?: number;
  min_new_tokens?: number;
  /** The whole sequence, as transformers' min_length counts it; min_new_tokens wins over it. */
  min_length?: number;
  num_beams?: number;
  length_penalty?: number;
  early_stopping?: boolean | 'never';
  repetition_penalty?: number;
  no_repeat_ngram_size?: number;
  do_sample?: boolean;
  top_p?: number;
  top_k?: number;
  temperature?: number;
  prompt?: string;
}

/**
 * The two ways to bound one length: the whole sequence (transformers' max_length, min_length) or the
 * new tokens (max_new_tokens, min_new_tokens), which wins over it, as in transformers. A layer that
 * bounds a length either way replaces both bounds of it from the layer below: a derived model's
 * block the base's (src/syntax/resolve.ts), the block generation_config.json's (src/lower/conventions.ts);
 * one block giving both is BLIP2043 (src/checks/LengthBoundedTwiceRule.ts).
 */
export const LENGTH_BOUNDS = [
  ['max_length', 'max_new_tokens'],
  ['min_length', 'min_new_tokens'],
] as const satisfies ReadonlyArray<readonly [keyof IrGeneration, keyof IrGeneration]>;

export interface IrModel {
  name: string;
  /** The file that declared the model (after `extends`, the most derived one). */
  file: string;
  loc: SourceLoc;
  /** Name of the model this one extends, if any (informational; nodes are already merged). */
  extends?: string;
  inputs: IrInput[];
  /** Topologically ordered: every edge's `from` is an input or an earlier node. */
  nodes: IrNode[];
  outputs: IrOutput[];
  preprocess: IrPreprocess;
  generation: IrGeneration;
  preprocessLocs: Record<string, SourceLoc>;
  generationLocs: Record<string, SourceLoc>;
}

/** A whole checked program: the models of one file (imported models are merged into `extends`). */
export interface IrProgram {
  file: string;
  models: IrModel[];
}
