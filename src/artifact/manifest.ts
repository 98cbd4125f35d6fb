// manifest.json: what `blip compile` writes last into an artifact directory and what `blip run`
// reads first. The TypeScript type and its JSON Schema (ajv) live side by side; `readManifest`
// refuses, with a BLIP5xxx error naming the directory, a manifest that is missing, not JSON, from
// another format version, or not valid against the schema.
//
// Codes: BLIP5001 no manifest.json, BLIP5002 invalid manifest, BLIP5003 other format version,
// BLIP5004 a file the manifest names is missing from the directory.
import { accessSync, constants, existsSync, readdirSync, statSync, type Stats } from 'node:fs';
import { isSystemError, systemErrorMeaning } from '../filesystem.js';
import { readJsonFile } from '../jsonSyntax.js';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { BlipError } from '../diagnostics/BlipError.js';
import { VERSION } from '../version.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'blip-graph-artifact';
/** Bumped on any incompatible change; the runtime refuses other versions. */
export const MANIFEST_VERSION = 1;

export type TensorType = 'float32' | 'float16' | 'int64';

export interface TensorIO {
  name: string;
  type: TensorType;
  /** Dimensions: numbers are fixed, strings are symbolic (batch, sequence, past_sequence, ...). */
  shape: Array<number | string>;
}

export interface GraphEntry {
  /** File name in the artifact directory (encode.onnx, decoder.onnx, retrieval.onnx). */
  file: string;
  inputs: TensorIO[];
  outputs: TensorIO[];
  /** ONNX node count (for the summary and `blip inspect`). */
  nodes: number;
}

export interface DecoderFacts {
  /** Decoder layers: one `past.{i}.key` / `past.{i}.value` pair (and `cross.{i}.*`) per layer. */
  layers: number;
  /** Key/value heads of the self-attention cache (Nkv). */
  kv_heads: number;
  head_dim: number;
  hidden_size: number;
  vocab_size: number;
  /** Exactly the inputs decoder.onnx declares, in order; the runtime feeds exactly these. */
  inputs: string[];
  /** Inputs decoder.onnx takes from encode.onnx's outputs of the same name (cross.*, prefix_embeds, ...). */
  from_encode: string[];
  /**
   * How the decoder numbers positions: `past_length` = P + 0..S-1 computed inside the graph
   * (BLIP, which ignores padding); `attention_mask` = cumulative sum of the mask inside the graph
   * (OPT); `input` = the runtime feeds `position_ids`.
   */
  positions: 'past_length' | 'attention_mask' | 'input';
  cross_attention: boolean;
  /**
   * 'grouped': cross.* and cross_attention_mask take one row per encoded row (I), and the step's
   * B rows are I groups of B / I contiguous rows, group i reading encoded row i (beams, returned
   * sequences). Absent (artifacts compiled before it): one cross row per step row.
   */
  cross_rows?: 'grouped';
}

export interface Preprocess {
  image_size: number;
  mean: number[];
  std: number[];
  resample: 'nearest' | 'bilinear' | 'bicubic' | 'lanczos';
  rescale_factor: number;
  do_resize: boolean;
  do_rescale: boolean;
  do_normalize: boolean;
  do_convert_rgb: boolean;
  /** Where each value came from: the graph's preprocess block, a checkpoint file, or the default. */
  source: Record<string, string>;
}

export interface TokenizerEntry {
  /** Directory in the artifact (tokenizer, qformer_tokenizer). */
  dir: string;
  files: string[];
}

export interface TextConventions {
  bos_token_id?: number;
  /** Empty: the model has no end-of-sequence id (config.json eos_token_id null); generation runs to its length limit. */
  eos_token_id: number[];
  pad_token_id: number;
  sep_token_id?: number;
  /** The first decoder token (BLIP: [DEC] = text_config.bos_token_id). */
  decoder_start_token_id?: number;
  image_token_id?: number;
  num_query_tokens?: number;
  /**
   * Positions the visual prefix of a decoder-only language model takes in front of its text: as
   * many `<image>` placeholders go before the prompt (with image_token_id), or positions before it
   * (without). num_query_tokens for a Q-Former's queries; 1 + (image_size / patch_size)² for a
   * ViT's outputs (`opt(prefix: vision, …)`). Absent (artifacts compiled before it): num_query_tokens.
   */
  prefix_length?: number;
  /**
   * How a decoder prompt is built from the tokenizer's output:
   * `blip` = tokenize with special tokens ([CLS] text [SEP]), replace the first id with
   * decoder_start_token_id and drop the last (what BlipForConditionalGeneration.generate does);
   * with no prompt the decoder starts from [decoder_start_token_id] alone.
   * `plain` = the tokenizer's ids as they are.
   */
  prompt_format: 'blip' | 'plain';
  /**
   * Learned-position limits, in tokens: `decoder` bounds prompt + prefix + new tokens of the
   * generating decoder; `text` a text encoder's input (BLIP VQA question, BLIP ITM text);
   * `qformer_text` the text entering a Q-Former (BLIP-2 ITM, InstructBLIP instruction). Longer
   * inputs are refused (BLIP5032) rather than failing inside onnxruntime.
   */
  max_positions?: { decoder?: number; text?: number; qformer_text?: number };
  /**
   * The generating model's config max_position_embeddings (its node's `max_positions`: the learned
   * table of BERT and OPT, LLaMA's context length; T5 has none). transformers caps its
   * model-agnostic default length, the prompt + 20 new tokens, at it (explicit lengths are not
   * capped), and so does the runtime. Absent (artifacts compiled before it): max_positions.decoder.
   */
  max_position_embeddings?: number;
  /** Vocabulary sizes of the text encoder (`text`) and the Q-Former (`qformer_text`) that read text: ids beyond them are refused (BLIP5033). */
  vocab_sizes?: { text?: number; qformer_text?: number };
  /** Where the VQA question / retrieval text goes: the encoder (encode.onnx / retrieval.onnx input_ids). */
  text_input?: 'encoder' | 'decoder';
  /**
   * false: the graph reads no text input (`opt(prefix: projection)`, a caption decoder without a
   * text port), so the model generates from the image alone and refuses a prompt (BLIP5030).
   * Absent: it takes one.
   */
  takes_prompt?: false;
  /**
   * false: the language model reads no text (`llama(prefix: projection)` under a Q-Former that reads
   * the instruction): the prompt goes to the Q-Former only and the LLM starts from its bos. Absent: both read it.
   */
  llm_prompt?: false;
}

export interface Generation {
  max_length?: number;
  max_new_tokens?: number;
  min_length?: number;
  min_new_tokens?: number;
  num_beams: number;
  do_sample: boolean;
  length_penalty?: number;
  early_stopping?: boolean | 'never';
  repetition_penalty?: number;
  no_repeat_ngram_size?: number;
  top_p?: number;
  top_k?: number;
  temperature?: number;
  prompt?: string;
  source: Record<string, string>;
}

export interface ManifestOutput {
  /** The output's name in the .blip file. */
  name: string;
  task: 'generate' | 'itm' | 'itc';
  /** The graph that computes it. */
  graph: 'decoder' | 'retrieval';
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  compiler: { name: 'blip-graph'; version: string };
  /** The model's name in the .blip file. */
  model: string;
  /** config.json model_type family. */
  family: 'blip' | 'blip-2' | 'instructblip';
  task: 'caption' | 'vqa' | 'retrieval';
  /** Precision of the weights and of the arithmetic; graph inputs and outputs are always float32. */
  dtype: 'float32' | 'float16';
  /** Runtime target whose fused operators the graphs use (`blip compile --target`); absent: plain ONNX. */
  target?: 'cpu' | 'cuda' | 'webgpu';
  /** Weight-only quantization of the linear layers (`--quantize`, com.microsoft.MatMulNBits); absent: none. */
  quantize?: 'int8' | 'int4';
  outputs: ManifestOutput[];
  graphs: { encode?: GraphEntry; decoder?: GraphEntry; retrieval?: GraphEntry };
  /** The external-data file shared by all graphs. */
  weights: { file: string; bytes: number; tensors: number; parameters: number };
  decoder?: DecoderFacts;
  preprocess: Preprocess;
  tokenizer?: TokenizerEntry;
  qformer_tokenizer?: TokenizerEntry;
  text: TextConventions;
  generation?: Generation;
  /** For ITM: which logit index means "match" (BLIP: 1). */
  itm?: { match_index: number };
  source: {
    graph: { file: string; sha256: string };
    checkpoint: {
      dir: string;
      /** Content hash: config.json + every tensor read (name, dtype, shape, bytes), in name order. */
      fingerprint: string;
      files: string[];
      dtypes: Record<string, number>;
    };
  };
}

const int = { type: 'integer' } as const;
const nonneg = { type: 'integer', minimum: 0 } as const;
const str = { type: 'string', minLength: 1 } as const;
const strMap = { type: 'object', additionalProperties: { type: 'string' } } as const;
const tensorIO = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'shape'],
  properties: {
    name: str,
    type: { enum: ['float32', 'float16', 'int64'] },
    shape: { type: 'array', items: { anyOf: [nonneg, str] } },
  },
} as const;
const graphEntry = {
  type: 'object',
  additionalProperties: false,
  required: ['file', 'inputs', 'outputs', 'nodes'],
  properties: {
    file: { type: 'string', pattern: '^[A-Za-z0-9_.-]+\\.onnx$' },
    inputs: { type: 'array', items: tensorIO },
    outputs: { type: 'array', items: tensorIO, minItems: 1 },
    nodes: nonneg,
  },
} as const;
const tokenizerEntry = {
  type: 'object',
  additionalProperties: false,
  required: ['dir', 'files'],
  properties: { dir: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' }, files: { type: 'array', items: str } },
} as const;

/** The JSON Schema of manifest.json (draft-07 as ajv 8 defaults). */
export const manifestSchema = {
  $id: 'blip:artifact/manifest',
  type: 'object',
  additionalProperties: false,
  required: ['format', 'version', 'compiler', 'model', 'family', 'task', 'dtype', 'outputs', 'graphs', 'weights', 'preprocess', 'text', 'source'],
  properties: {
    format: { const: MANIFEST_FORMAT },
    version: { const: MANIFEST_VERSION },
    compiler: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'version'],
      properties: { name: { const: 'blip-graph' }, version: str },
    },
    model: str,
    family: { enum: ['blip', 'blip-2', 'instructblip'] },
    task: { enum: ['caption', 'vqa', 'retrieval'] },
    dtype: { enum: ['float32', 'float16'] },
    target: { enum: ['cpu', 'cuda', 'webgpu'] },
    quantize: { enum: ['int8', 'int4'] },
    outputs: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'task', 'graph'],
        properties: { name: str, task: { enum: ['generate', 'itm', 'itc'] }, graph: { enum: ['decoder', 'retrieval'] } },
      },
    },
    graphs: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { encode: graphEntry, decoder: graphEntry, retrieval: graphEntry },
    },
    weights: {
      type: 'object',
      additionalProperties: false,
      required: ['file', 'bytes', 'tensors', 'parameters'],
      properties: { file: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' }, bytes: nonneg, tensors: nonneg, parameters: nonneg },
    },
    decoder: {
      type: 'object',
      additionalProperties: false,
      required: ['layers', 'kv_heads', 'head_dim', 'hidden_size', 'vocab_size', 'inputs', 'from_encode', 'positions', 'cross_attention'],
      properties: {
        layers: { type: 'integer', minimum: 1 },
        kv_heads: { type: 'integer', minimum: 1 },
        head_dim: { type: 'integer', minimum: 1 },
        hidden_size: { type: 'integer', minimum: 1 },
        vocab_size: { type: 'integer', minimum: 1 },
        inputs: { type: 'array', items: str, minItems: 1 },
        from_encode: { type: 'array', items: str },
        positions: { enum: ['past_length', 'attention_mask', 'input'] },
        cross_attention: { type: 'boolean' },
        cross_rows: { enum: ['grouped'] },
      },
    },
    preprocess: {
      type: 'object',
      additionalProperties: false,
      required: ['image_size', 'mean', 'std', 'resample', 'rescale_factor', 'do_resize', 'do_rescale', 'do_normalize', 'do_convert_rgb', 'source'],
      properties: {
        image_size: { type: 'integer', minimum: 1 },
        mean: { type: 'array', items: { type: 'number' }, minItems: 3, maxItems: 3 },
        std: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, minItems: 3, maxItems: 3 },
        resample: { enum: ['nearest', 'bilinear', 'bicubic', 'lanczos'] },
        rescale_factor: { type: 'number', exclusiveMinimum: 0 },
        do_resize: { type: 'boolean' },
        do_rescale: { type: 'boolean' },
        do_normalize: { type: 'boolean' },
        do_convert_rgb: { type: 'boolean' },
        source: strMap,
      },
    },
    tokenizer: tokenizerEntry,
    qformer_tokenizer: tokenizerEntry,
    text: {
      type: 'object',
      additionalProperties: false,
      required: ['eos_token_id', 'pad_token_id', 'prompt_format'],
      properties: {
        bos_token_id: int,
        // empty: no end-of-sequence id (config.json eos_token_id null), generation runs to its length limit
        eos_token_id: { type: 'array', items: int },
        pad_token_id: int,
        sep_token_id: int,
        decoder_start_token_id: int,
        image_token_id: int,
        num_query_tokens: { type: 'integer', minimum: 1 },
        prefix_length: { type: 'integer', minimum: 1 },
        prompt_format: { enum: ['blip', 'plain'] },
        text_input: { enum: ['encoder', 'decoder'] },
        takes_prompt: { const: false },
        llm_prompt: { const: false },
        max_positions: {
          type: 'object',
          additionalProperties: false,
          properties: { decoder: { type: 'integer', minimum: 1 }, text: { type: 'integer', minimum: 1 }, qformer_text: { type: 'integer', minimum: 1 } },
        },
        max_position_embeddings: { type: 'integer', minimum: 1 },
        vocab_sizes: {
          type: 'object',
          additionalProperties: false,
          properties: { text: { type: 'integer', minimum: 1 }, qformer_text: { type: 'integer', minimum: 1 } },
        },
      },
    },
    generation: {
      type: 'object',
      additionalProperties: false,
      required: ['num_beams', 'do_sample', 'source'],
      properties: {
        max_length: { type: 'integer', minimum: 1 },
        max_new_tokens: { type: 'integer', minimum: 1 },
        min_length: nonneg,
        min_new_tokens: nonneg,
        num_beams: { type: 'integer', minimum: 1 },
        do_sample: { type: 'boolean' },
        length_penalty: { type: 'number' },
        early_stopping: { anyOf: [{ type: 'boolean' }, { const: 'never' }] },
        repetition_penalty: { type: 'number', exclusiveMinimum: 0 },
        no_repeat_ngram_size: nonneg,
        top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        top_k: nonneg,
        temperature: { type: 'number', exclusiveMinimum: 0 },
        prompt: { type: 'string' },
        source: strMap,
      },
    },
    itm: { type: 'object', additionalProperties: false, required: ['match_index'], properties: { match_index: nonneg } },
    source: {
      type: 'object',
      additionalProperties: false,
      required: ['graph', 'checkpoint'],
      properties: {
        graph: { type: 'object', additionalProperties: false, required: ['file', 'sha256'], properties: { file: str, sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' } } },
        checkpoint: {
          type: 'object',
          additionalProperties: false,
          required: ['dir', 'fingerprint', 'files', 'dtypes'],
          properties: {
            dir: str,
            fingerprint: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            files: { type: 'array', items: str },
            dtypes: { type: 'object', additionalProperties: nonneg },
          },
        },
      },
    },
  },
} as const;

let validator: ReturnType<Ajv['compile']> | undefined;
function schemaErrors(m: unknown): ErrorObject[] {
  validator ??= new Ajv({ allErrors: true, strict: true }).compile(manifestSchema);
  return validator(m) ? [] : (validator.errors ?? []);
}

/** Schema errors of a manifest object, as "path: message" lines ([] when valid). */
export function manifestErrors(m: unknown): string[] {
  return schemaErrors(m).map((e: ErrorObject) => {
    const where = e.instancePath || '(top level)';
    const extra = e.keyword === 'additionalProperties' ? ` "${(e.params as { additionalProperty: string }).additionalProperty}"` : e.keyword === 'enum' ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')})` : '';
    return `${where}: ${e.message}${extra}`;
  });
}

/**
 * The properties the schema does not know ("text.max_position_embeddings"), when they are all that
 * is wrong with `m`, else []. Version 1 gains optional fields compatibly (an older manifest lacks
 * them and still reads), so a field this version lacks is most likely a newer compiler's, not a
 * broken file: that is the message for it, where "invalid" would send the user to recompile with
 * the older version they have.
 */
function unknownFields(m: unknown): string[] {
  const errs = schemaErrors(m);
  if (!errs.length || !errs.every((e) => e.keyword === 'additionalProperties')) return [];
  return errs.map((e) => {
    const path = e.instancePath
      .split('/')
      .slice(1)
      .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((seg, i) => (/^\d+$/.test(seg) ? `[${seg}]` : i ? `.${seg}` : seg))
      .join('');
    const field = (e.params as { additionalProperty: string }).additionalProperty;
    return path ? `${path}.${field}` : field;
  });
}

/** What kind of model a manifest describes, for messages: "a BLIP captioning model", "an InstructBLIP model". */
export function modelPhrase(m: Pick<Manifest, 'family' | 'task'>): string {
  if (m.family === 'instructblip') return m.task === 'retrieval' ? 'an InstructBLIP retrieval model' : 'an InstructBLIP model';
  if (m.family === 'blip-2') return m.task === 'retrieval' ? 'a BLIP-2 retrieval model' : 'a BLIP-2 generating model';
  return `a BLIP ${m.task === 'caption' ? 'captioning' : m.task === 'vqa' ? 'question-answering' : 'retrieval'} model`;
}

/** A size in bytes as the summaries of `blip compile` and `blip inspect` give it: "7.4 MB", "62.2 KB". */
export function byteSize(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} KB`;
}

/** "blip2_opt (blip-2 caption, float32, target cpu, int4 weights)": as `blip compile` and `blip inspect` head their summaries. */
export function modelHeading(m: Pick<Manifest, 'model' | 'family' | 'task' | 'dtype' | 'target' | 'quantize'>): string {
  return `${m.model} (${m.family} ${m.task}, ${m.dtype}${m.target ? `, target ${m.target}` : ''}${m.quantize ? `, ${m.quantize} weights` : ''})`;
}

/**
 * Why `dir`, which has no manifest.json, is not a compiled model, and what to do. `--out` is
 * suggested into it only where compile would write (a path not there, an empty folder): a folder
 * with files in it is refused by compile (BLIP4016), and a .blip file is a graph to check or compile.
 */
function notCompiled(dir: string): string {
  if (existsSync(join(dir, 'config.json')))
    return `${dir} is a HuggingFace checkpoint, not a compiled model: compile it first ('blip compile [GRAPH.blip] --weights ${dir} --out OUT'; without a graph, the shipped one for its class), then use OUT`;
  let st: Stats | undefined;
  try {
    st = statSync(dir);
  } catch {
    st = undefined;
  }
  if (!st) return `${dir} does not exist (compile a model with 'blip compile GRAPH.blip --weights DIR --out ${dir}')`;
  const compileInto = `'blip compile GRAPH.blip --weights DIR --out OUT', then use OUT`;
  if (!st.isDirectory()) {
    if (/\.blip$/i.test(dir))
      return `${dir} is a graph, not a compiled model: check it with 'blip check ${dir}', draw it with 'blip graph ${dir}', or compile it ('blip compile ${dir} --weights DIR --out OUT') and use OUT`;
    return `${dir} is a file, not a compiled model (a folder with a ${MANIFEST_FILE}, written by ${compileInto})`;
  }
  let empty = false;
  try {
    empty = readdirSync(dir).length === 0;
  } catch {
    empty = false;
  }
  return empty
    ? `${dir} is not a compiled model: it is empty (compile one into it with 'blip compile GRAPH.blip --weights DIR --out ${dir}')`
    : `${dir} is not a compiled model: it has no ${MANIFEST_FILE} (compile one into a new folder with ${compileInto})`;
}

/** Read and validate `dir/manifest.json`; every file it names must exist in `dir`. */
export function readManifest(dir: string): Manifest {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) {
    throw new BlipError('BLIP5001', notCompiled(dir));
  }
  const read = readJsonFile(path);
  if (read.problem !== undefined) throw new BlipError('BLIP5002', `${path} ${read.problem}${read.problem.startsWith('is not valid JSON') ? '; recompile the model' : ''}`);
  const m = read.value;
  const obj = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
  if (obj.format !== MANIFEST_FORMAT) {
    throw new BlipError('BLIP5002', `${path} is not a blip-graph manifest (format is ${JSON.stringify(obj.format)}, "${MANIFEST_FORMAT}" expected)`);
  }
  if (obj.version !== MANIFEST_VERSION) {
    const by = (obj.compiler as { version?: string } | undefined)?.version;
    throw new BlipError(
      'BLIP5003',
      `${path} has format version ${JSON.stringify(obj.version)}${by ? ` (written by blip-graph ${by})` : ''}; this blip-graph reads version ${MANIFEST_VERSION}. Recompile the model with this version`,
    );
  }
  const unknown = unknownFields(m);
  if (unknown.length) {
    const by = (obj.compiler as { version?: string } | undefined)?.version;
    throw new BlipError(
      'BLIP5002',
      `${path} has ${unknown.join(', ')}, ${unknown.length === 1 ? 'a field' : 'fields'} this blip-graph (${VERSION}) does not know: the model was likely compiled by a newer blip-graph${by && by !== VERSION ? ` (${by})` : ''}; upgrade blip-graph, or recompile the model with this version`,
    );
  }
  const errs = manifestErrors(m);
  if (errs.length) {
    const shown = errs.slice(0, 5).join('; ');
    throw new BlipError('BLIP5002', `${path} is invalid: ${shown}${errs.length > 5 ? `; and ${errs.length - 5} more` : ''}`);
  }
  const man = m as Manifest;
  const files = [man.weights.file, ...Object.values(man.graphs).map((g) => g.file)];
  for (const t of [man.tokenizer, man.qformer_tokenizer]) if (t) files.push(...t.files.map((f) => join(t.dir, f)));
  for (const f of files) {
    if (!existsSync(join(dir, f))) throw new BlipError('BLIP5004', `${dir} is incomplete: ${f}, named by ${MANIFEST_FILE}, is missing`);
    // (an unreadable weights.bin would fail inside onnxruntime, naming a graph and C++ internals)
    try {
      accessSync(join(dir, f), constants.R_OK);
    } catch (e) {
      throw new BlipError('BLIP5004', `${join(dir, f)} cannot be read: ${isSystemError(e) ? systemErrorMeaning(e) : String(e)}`);
    }
  }
  // A copy cut short (an interrupted scp or rsync) would otherwise fail inside onnxruntime's
  // external-data reader, naming one initializer and its offsets.
  const size = statSync(join(dir, man.weights.file)).size;
  if (size !== man.weights.bytes) {
    throw new BlipError('BLIP5004', `${dir} is incomplete: ${man.weights.file} has ${size} bytes, ${MANIFEST_FILE} says ${man.weights.bytes}; copy it again or recompile`);
  }
  return man;
}
