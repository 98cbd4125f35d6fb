// Facts the manifest carries besides the graphs, read from the .blip file's blocks and the
// checkpoint's files, in that order of precedence: image preprocessing, generation defaults, the
// special token ids and how prompts are built. Each value records where it came from.
import { LENGTH_BOUNDS, type IrGeneration, type IrModel, type IrPreprocess, type SourceLoc } from '../ir/types.js';
import type { Generation, Manifest, Preprocess, TextConventions } from '../artifact/manifest.js';
import type { Checkpoint, JsonObject } from '../weights/checkpoint.js';
import { CompileError } from './CompileError.js';
import { effectiveConfig } from '../weights/transformersConfig.js';
import { nodeKinds } from '../nodes/index.js';

export type Family = Manifest['family'];

export function familyOf(config: JsonObject, dir: string): Family {
  const t = String(config.model_type ?? '');
  if (t === 'blip') return 'blip';
  if (t === 'blip-2' || t === 'blip_2') return 'blip-2';
  if (t === 'instructblip') return 'instructblip';
  const found = config.model_type === undefined || config.model_type === null ? 'no model_type' : `model_type ${JSON.stringify(config.model_type)}`;
  throw new CompileError('BLIP4015', `${dir}/config.json has ${found}; blip-graph compiles BLIP ("blip"), BLIP-2 ("blip-2") and InstructBLIP ("instructblip") checkpoints`);
}

const obj = (v: unknown): JsonObject => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {});
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
/** A special id as the file gives it (a string or a float is then refused as BLIP4017, not replaced by the default); undefined when left out or null. */
const id = (v: unknown): number | undefined => (v === undefined || v === null ? undefined : (v as number));

/** PIL resampling codes as image processors store them (4 BOX and 5 HAMMING are not resized with). */
export const RESAMPLE: Record<number, Preprocess['resample']> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic' };
/** OPENAI_CLIP_MEAN / _STD: the BLIP family's default normalisation. */
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/**
 * The graph's preprocess block, else the checkpoint's image processor (transformers 5 nests it in
 * processor_config.json; older checkpoints have preprocessor_config.json), else BlipImageProcessor's
 * defaults with the vision encoder's image size.
 */
export function preprocessFor(model: IrModel, ckpt: Checkpoint, imageSize: number): Preprocess {
  const fromProcessor = ckpt.readJson('processor_config.json');
  const nested = fromProcessor && obj(fromProcessor.image_processor);
  const [file, ip] = nested && Object.keys(nested).length ? ['processor_config.json', nested] : ['preprocessor_config.json', ckpt.readJson('preprocessor_config.json')];
  const g: IrPreprocess = model.preprocess ?? {};
  const source: Record<string, string> = {};
  const pick = <T>(key: string, graph: T | undefined, checkpoint: T | undefined, dflt: T): T => {
    if (graph !== undefined) return (source[key] = 'graph'), graph;
    if (checkpoint !== undefined) return (source[key] = file as string), checkpoint;
    return (source[key] = 'default'), dflt;
  };
  // Values present in the file are taken as they are (a single number for all three channels, as
  // image processors accept, widened): manifestValues.ts refuses malformed ones by name, where
  // falling back to a default would preprocess differently from transformers without a word. A
  // null value is refused below where its step is on.
  const given = (v: unknown): unknown => (v === null ? undefined : v);
  const size = obj(ip?.size);
  // {height, width} that differ: not a square resize, kept as the pair for the check to refuse
  const pair = size.height !== undefined && size.width !== undefined && size.height !== size.width ? [size.height, size.width] : undefined;
  // A size object without a height ({shortest_edge}: transformers 5 then keeps the aspect ratio,
  // which the encoder cannot take) is kept as it is for the check to refuse, not read as a square.
  const sizeGiven = (): unknown => {
    // [height, width], as transformers reads a list (a square one is its side; another the check refuses)
    if (Array.isArray(ip?.size)) return ip.size.length === 2 && ip.size[0] === ip.size[1] ? ip.size[0] : ip.size;
    if (typeof ip?.size !== 'object' || ip?.size === null) return ip?.size;
    if (pair) return pair;
    if (size.height !== undefined || size.width !== undefined) return size.height ?? size.width;
    return Object.keys(size).length ? ip.size : undefined;
  };
  const ckptSize = given(sizeGiven());
  const channels = (v: unknown) => (typeof v === 'number' ? [v, v, v] : given(v));
  const resample = (v: unknown) => (v === undefined || v === null ? undefined : typeof v === 'number' && RESAMPLE[v] ? RESAMPLE[v] : v);
  const value = <T>(v: unknown) => v as T | undefined;
  // null is None to transformers: a step switched by null is off (it skips the resize, the rescale,
  // the normalisation, the RGB conversion), not on by default.
  const flag = (v: unknown): unknown => (v === null ? false : v);
  const out: Preprocess = {
    image_size: pick('image_size', g.image_size, value<number>(ckptSize), imageSize),
    mean: pick('mean', g.mean, value<number[]>(channels(ip?.image_mean)), CLIP_MEAN),
    std: pick('std', g.std, value<number[]>(channels(ip?.image_std)), CLIP_STD),
    resample: pick('resample', g.resample, value<Preprocess['resample']>(resample(ip?.resample)), 'bicubic'),
    rescale_factor: pick('rescale_factor', g.rescale_factor, value<number>(given(ip?.rescale_factor)), 1 / 255),
    do_resize: pick('do_resize', undefined, value<boolean>(flag(ip?.do_resize)), true),
    do_rescale: pick('do_rescale', undefined, value<boolean>(flag(ip?.do_rescale)), true),
    do_normalize: pick('do_normalize', g.do_normalize, value<boolean>(flag(ip?.do_normalize)), true),
    do_convert_rgb: pick('do_convert_rgb', g.do_convert_rgb, value<boolean>(flag(ip?.do_convert_rgb)), true),
    source,
  };
  // What the manifest cannot hold is refused here, at the model's output, in one line each.
  const refused: string[] = [];
  // An image processor file stores resample as PIL's integer code: transformers' PIL backend resizes
  // any other value (a name such as "nearest", "3") with BILINEAR, its torchvision backend refuses
  // it. A name is not read as the filter it names (the graph's preprocess block takes names).
  if (g.resample === undefined && ip?.resample !== undefined && ip.resample !== null && typeof ip.resample !== 'number') {
    const codes = Object.entries(RESAMPLE).map(([code, name]) => `${code} ${name}`).join(', ');
    refused.push(`${file} gives ${JSON.stringify(ip.resample)} for resample: expected an integer PIL code (${codes}); transformers resizes with bilinear for any other value (PIL backend) or refuses it (torchvision backend)`);
  }
  // A value written as null for a step that is on: transformers refuses it ("`size` and `resample`
  // must be specified if `do_resize` is `True`"), where the default would preprocess without a word.
  const needed: Array<[key: string, fromGraph: unknown, step: keyof Preprocess]> = [
    ['size', g.image_size, 'do_resize'], ['resample', g.resample, 'do_resize'], ['image_mean', g.mean, 'do_normalize'],
    ['image_std', g.std, 'do_normalize'], ['rescale_factor', g.rescale_factor, 'do_rescale'],
  ];
  for (const [key, fromGraph, step] of needed) {
    if (ip?.[key] === null && fromGraph === undefined && out[step] === true) {
      refused.push(`${file} gives null for ${key}, which ${step} true needs (transformers refuses it too): write the value, or leave the key out for BlipImageProcessor's default`);
    }
  }
  // do_center_crop: transformers crops the resized image to crop_size (padding where it is larger);
  // blip-graph does not crop, so only a crop to the size just resized to (one that changes nothing)
  // is taken.
  const crop = ip?.do_center_crop;
  if (crop !== undefined && crop !== null && crop !== false) {
    const cropSide = squareSide(ip!.crop_size);
    if (crop !== true) refused.push(`${file} gives ${JSON.stringify(crop)} for do_center_crop: expected true or false`);
    else if (ip!.crop_size === undefined || ip!.crop_size === null) refused.push(`${file} gives do_center_crop true and no crop_size (transformers refuses it too): set do_center_crop false`);
    else if (out.do_resize !== true || cropSide !== out.image_size) {
      const resized = out.do_resize === true ? `images are resized to ${JSON.stringify(out.image_size)} × ${JSON.stringify(out.image_size)}` : 'images are not resized, do_resize is false';
      refused.push(`${file} gives do_center_crop true with crop_size ${JSON.stringify(ip!.crop_size)}, but blip-graph does not crop (${resized}): expected do_center_crop false, or a crop_size equal to the resized size (a crop that changes nothing)`);
    }
  }
  if (refused.length) throw new CompileError(refused.map((message) => ({ code: 'BLIP4017', message, loc: model.outputs[0]?.loc })));
  return out;
}

/** The side of a square size as image processors write one (16, [16, 16], {"height": 16, "width": 16}), else undefined. */
function squareSide(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  const [h, w] = Array.isArray(v) ? v : [obj(v).height, obj(v).width];
  return typeof h === 'number' && h === w ? h : undefined;
}

const GENERATION_KEYS = [
  'max_length', 'max_new_tokens', 'min_length', 'min_new_tokens', 'num_beams', 'do_sample', 'length_penalty', 'early_stopping',
  'repetition_penalty', 'no_repeat_ngram_size', 'top_p', 'top_k', 'temperature',
] as const;

/**
 * Generation defaults: the graph's generation block, else generation_config.json, else
 * transformers' GenerationConfig defaults (max_length 20, greedy). A length the block bounds,
 * either way, is the block's: generation_config.json's bound of it is left out (its max_new_tokens
 * would win over the block's max_length, as max_new_tokens wins in transformers whichever layer
 * sets it), as generate()'s options replace the manifest's. Within one layer max_new_tokens /
 * min_new_tokens win at run time, as in transformers.
 */
export function generationFor(model: IrModel, ckpt: Checkpoint): Generation {
  const file = ckpt.readJson('generation_config.json') ?? {};
  const g: IrGeneration = model.generation ?? {};
  const out: Record<string, unknown> = {};
  const source: Record<string, string> = {};
  const graphBounds = new Set<string>(LENGTH_BOUNDS.filter((pair) => pair.some((k) => g[k] !== undefined)).flat());
  for (const k of GENERATION_KEYS) {
    const fromGraph = (g as Record<string, unknown>)[k];
    if (fromGraph !== undefined) (out[k] = fromGraph), (source[k] = 'graph');
    else if (file[k] !== undefined && file[k] !== null && !graphBounds.has(k)) (out[k] = file[k]), (source[k] = 'generation_config.json');
  }
  if (g.prompt !== undefined) (out.prompt = g.prompt), (source.prompt = 'graph');
  for (const [k, v] of [['max_length', 20], ['num_beams', 1], ['do_sample', false]] as const) {
    if (out[k] === undefined && !(k === 'max_length' && out.max_new_tokens !== undefined)) (out[k] = v), (source[k] = 'default');
  }
  return { ...(out as Omit<Generation, 'source'>), source };
}

/** The node `generate()` drives, as far as the manifest's text conventions go. */
export interface GeneratingNode {
  kind: string;
  /** The config.json section its attributes come from ('' the top level; absent: text_config). */
  section?: string;
  /** The generate output, where a special id the model cannot run with is reported. */
  loc?: SourceLoc;
}

/**
 * The config.json section the special ids are read from: the generating node's own (a BLIP caption
 * decoder over BLIP-2 queries reads "decoder_config" where text_config is the OPT's), else text_config.
 */
export function textSectionOf(gen: GeneratingNode | undefined): string {
  return gen?.section ?? 'text_config';
}

/**
 * Special ids and prompt layout, taken from the generating node: its kind says how prompts are built
 * (NodeKind.promptFormat: 'blip', BLIP's BERT decoder: [DEC] + the caption prefix, ending on [SEP];
 * else a language model's: the tokenizer's ids, after the visual prefix or into the T5 encoder) and
 * its config section gives the ids. BLIP's are fixed by its modeling code, not by generation_config.
 * Retrieval models (no generating node) follow the family. `prefixLength`: the positions a
 * decoder-only language model's visual prefix takes (./prefixLength.ts).
 */
export function textConventionsFor(family: Family, fileConfig: JsonObject, task: Manifest['task'], gen?: GeneratingNode, prefixLength?: number): TextConventions {
  // Ids the file leaves out are its config classes' defaults (BlipTextConfig, OPTConfig, T5Config,
  // LlamaConfig), as transformers fills them in.
  const config = effectiveConfig(fileConfig).config;
  const section = textSectionOf(gen);
  const text = obj(section === '' ? config : config[section]);
  const at = section === '' ? 'config.json' : `config.json "${section}"`;
  // BlipTextLMHeadModel (transformers' BLIP text decoder): a generating bert
  const blipLayout = gen ? Object.hasOwn(nodeKinds, gen.kind) && nodeKinds[gen.kind]!.promptFormat === 'blip' : family === 'blip';
  if (blipLayout) {
    // BLIP's generate() writes bos_token_id over [CLS] as the decoder's first token: transformers
    // fails on a null one ("can't assign a NoneType"), where the class default would run unasked.
    if (gen && text.bos_token_id === null) {
      throw new CompileError('BLIP4017', `${at} bos_token_id is null, but BLIP's decoder starts from it ([DEC]; transformers fails on null too): write the id, or leave the key out for BlipTextConfig's default (30522)`, gen.loc);
    }
    const bos = id(text.bos_token_id) ?? 30522;
    const sep = id(text.sep_token_id) ?? 102;
    return {
      bos_token_id: bos,
      // Why sep: BLIP's generate() stops on [SEP] (text_config.sep_token_id), not on eos_token_id.
      eos_token_id: [sep],
      pad_token_id: id(text.pad_token_id) ?? 0,
      sep_token_id: sep,
      // Why bos: generate() replaces [CLS] by text_config.bos_token_id ([DEC]) as the first decoder token.
      decoder_start_token_id: bos,
      prompt_format: 'blip',
      text_input: task === 'caption' ? 'decoder' : 'encoder',
    };
  }
  // eos_token_id null: no end-of-sequence id, generation runs to its length limit (transformers
  // gives the language model's generation config eos None, whatever generation_config.json says).
  // Left out by a language model blip-graph has no class for: eos 2. No pad id (LlamaConfig leaves
  // it unset): the first eos, as generate() then pads with (the pads of a batch's shorter prompts
  // are ids the repetition penalty and the n-gram ban see).
  const eos = text.eos_token_id;
  const eosIds = eos === null ? [] : Array.isArray(eos) ? (eos as number[]) : [id(eos) ?? 2];
  const pad = id(text.pad_token_id) ?? eosIds[0];
  if (pad === undefined) {
    throw new CompileError('BLIP4017', `${at} gives no pad_token_id (left out or null) and eos_token_id null: the compiled model needs a padding id (a batch's shorter prompts are padded with it when the tokenizer has none); write pad_token_id`, gen?.loc);
  }
  const conv: TextConventions = {
    eos_token_id: eosIds,
    pad_token_id: pad,
    prompt_format: 'plain',
  };
  const bos = id(text.bos_token_id);
  if (bos !== undefined) conv.bos_token_id = bos;
  // An encoder-decoder's (T5's) decoder starts from decoder_start_token_id, else bos_token_id, as
  // transformers' generate() falls back (_prepare_special_tokens); with neither it refuses to
  // generate, and so does the compile: the runtime cannot start the decoder from nothing.
  const encoderDecoder = gen !== undefined && Object.hasOwn(nodeKinds, gen.kind) && nodeKinds[gen.kind]!.lowering?.decoder?.textInEncode === true;
  const start = id(text.decoder_start_token_id) ?? (encoderDecoder ? bos : undefined);
  if (start !== undefined) conv.decoder_start_token_id = start;
  else if (encoderDecoder) throw new CompileError('BLIP4017', `${at} gives no decoder_start_token_id and no bos_token_id (left out or null): the decoder starts from one of them, and transformers refuses to generate without; write decoder_start_token_id (Flan-T5's is 0)`, gen?.loc);
  if (id(config.image_token_index) !== undefined) conv.image_token_id = id(config.image_token_index);
  if (num(config.num_query_tokens) !== undefined) conv.num_query_tokens = num(config.num_query_tokens);
  if (prefixLength !== undefined) conv.prefix_length = prefixLength;
  return conv;
}
