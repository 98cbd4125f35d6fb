// What config.json, the image processor file and generation_config.json put in the manifest,
// checked before anything is written: the runtime validates manifest.json when it loads one
// (src/artifact/manifest.ts), so a value the compiler copied as it found it (a token id of 2.5,
// `num_beams: "x"`, an image size of 0) would otherwise make an artifact that compiles and then
// refuses to run, and a malformed one replaced by a default would preprocess unlike transformers.
// Each such value is a BLIP4017 error naming the file and key; a sampling setting a greedy model
// never uses (transformers accepts `temperature: 0` with `do_sample: false`) is dropped with a
// warning instead. Token ids must also lie in the decoder's vocabulary, and the processor's size
// match the vision encoder's, which no schema knows.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { manifestSchema, type Generation, type Preprocess, type TextConventions } from '../artifact/manifest.js';
import type { SourceLoc } from '../ir/types.js';
import { blockSchemaId, checkAttrs } from '../ir/validate.js';
import type { Problem } from './CompileError.js';
import { RESAMPLE } from './conventions.js';
import type { JsonObject } from '../weights/checkpoint.js';
import { effectiveConfig } from '../weights/transformersConfig.js';

/** Where each manifest `text` field comes from in the checkpoint's config.json: the special ids from the generating node's section. */
function textSources(section: string): Record<string, string> {
  const at = section === '' ? 'config.json' : `config.json "${section}"`;
  return {
    bos_token_id: `${at} bos_token_id`,
    eos_token_id: `${at} eos_token_id`,
    pad_token_id: `${at} pad_token_id`,
    sep_token_id: `${at} sep_token_id`,
    decoder_start_token_id: `${at} decoder_start_token_id`,
    image_token_id: 'config.json image_token_index',
    num_query_tokens: 'config.json num_query_tokens',
  };
}

/**
 * Why a manifest `text` field is not the value of its own config.json key, by field: the ones the
 * file leaves out, each with the config class whose default stands in
 * (src/weights/transformersConfig.ts), and a decoder start the file does not give (an
 * encoder-decoder's is then bos_token_id: conventions.ts; manifestValueProblems names its value by
 * bos_token_id), so that a complaint about one does not send the user looking for a key the file
 * does not have. `section`: where the special ids are read.
 */
export function textDefaults(config: JsonObject, section = 'text_config'): Map<string, string> {
  const { config: effective, filled } = effectiveConfig(config);
  const out = new Map<string, string>();
  const text = filled.get(section);
  for (const k of text?.keys ?? []) if (k in textSources(section)) out.set(k, `left out: ${text!.cls}'s default`);
  const root = filled.get('');
  if (root?.keys.has('num_query_tokens')) out.set('num_query_tokens', `left out: ${root.cls}'s default`);
  const ids = section === '' ? effective : effective[section];
  const start = ids && typeof ids === 'object' && !Array.isArray(ids) ? (ids as JsonObject).decoder_start_token_id : undefined;
  if (start === undefined || start === null) out.set('decoder_start_token_id', `${start === null ? 'null' : 'left out'}: the decoder starts from bos_token_id`);
  return out;
}

/** The image processor's names for the manifest's preprocess fields. */
const PROCESSOR_KEYS: Record<string, string> = { image_size: 'size', mean: 'image_mean', std: 'image_std' };

/** Read only when sampling: left out, with a warning, when the model decodes without it. */
const SAMPLING_ONLY = new Set(['temperature', 'top_p', 'top_k']);

const show = (v: unknown): string => JSON.stringify(v) ?? 'nothing';

let validators: { text: ValidateFunction; generation: ValidateFunction } | undefined;
function validatorsFor(): { text: ValidateFunction; generation: ValidateFunction } {
  if (!validators) {
    const ajv = new Ajv({ allErrors: true, strict: true });
    validators = { text: ajv.compile(manifestSchema.properties.text), generation: ajv.compile(manifestSchema.properties.generation) };
  }
  return validators;
}

/** What one branch of an anyOf takes, from the error ajv gives for it ("boolean", "\"never\""). */
function branchTakes(e: ErrorObject): string {
  if (e.keyword === 'type') return String(e.params.type);
  if (e.keyword === 'const') return JSON.stringify(e.params.allowedValue);
  if (e.keyword === 'enum') return (e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ');
  return `a value that ${e.message ?? 'fits'}`;
}

/**
 * Schema errors of one manifest section as [key, item index or undefined, message]. A value no
 * branch of an anyOf takes is one error saying what the branches take (`must be boolean or
 * "never"`), not ajv's one per branch and one for the anyOf.
 */
function errors(v: ValidateFunction, value: unknown): Array<[string, number | undefined, string]> {
  if (v(value)) return [];
  const all = v.errors ?? [];
  const anyOfs = all.filter((e) => e.keyword === 'anyOf');
  const branchesOf = (a: ErrorObject) => all.filter((e) => e !== a && e.instancePath === a.instancePath && e.schemaPath.startsWith(`${a.schemaPath}/`));
  const inBranch = new Set(anyOfs.flatMap(branchesOf));
  return all
    .filter((e) => !inBranch.has(e))
    .map((e: ErrorObject) => {
      const [key, index] = e.instancePath.split('/').slice(1);
      const message = e.keyword === 'anyOf' && branchesOf(e).length ? `must be ${branchesOf(e).map(branchTakes).join(' or ')}` : (e.message ?? 'is invalid');
      return [key ?? '', index === undefined ? undefined : Number(index), message];
    });
}

/**
 * Checks the manifest's `preprocess`, `text` and `generation` sections as they come from the
 * checkpoint, before anything is written; `generation` is edited in place (unused sampling settings
 * dropped). `imageSize`: the vision encoder's input size; `vocab`: the generating decoder's
 * vocabulary; `loc`: where in the .blip file to point when the graph wrote none of it (a checkpoint
 * value: the generate output); `textSection`: the config.json section the special ids come from
 * (conventions.ts textSectionOf); `preprocessLocs`: the lines of the graph's preprocess block, for a
 * value it wrote (its generation block is checked by blip check).
 */
export function manifestValueProblems(
  preprocess: Preprocess,
  imageSize: number | undefined,
  text: TextConventions,
  generation: Generation | undefined,
  vocab: number | undefined,
  loc: SourceLoc | undefined,
  warnings: string[],
  /** textDefaults: why a field is not its own key's value. */
  defaulted: Map<string, string> = new Map(),
  textSection = 'text_config',
  preprocessLocs: Record<string, SourceLoc> = {},
): Problem[] {
  const problems: Problem[] = [];
  const sources = textSources(textSection);
  // BLIP's decoder starts from bos_token_id and stops on sep_token_id, and an encoder-decoder's
  // (T5's) without decoder_start_token_id starts from bos_token_id (conventions.ts): their values
  // are named by those keys, so that one bad value is one line naming the key the file has
  const readFrom: Record<string, string> = {
    ...(defaulted.has('decoder_start_token_id') ? { decoder_start_token_id: 'bos_token_id' } : {}),
    ...(text.prompt_format === 'blip' ? { decoder_start_token_id: 'bos_token_id', eos_token_id: 'sep_token_id' } : {}),
  };
  const from = (field: string) => {
    const key = readFrom[field] ?? field;
    return `${sources[key] ?? `config.json ${key}`}${defaulted.has(key) ? ` (${defaulted.get(key)})` : ''}`;
  };
  const v = validatorsFor();
  // The image processor's values, by the rules a graph's preprocess block meets (sizes 16-4096,
  // three channels, a positive std, a filter blip-graph resizes with) and do_resize / do_rescale.
  const pp = preprocess as unknown as Record<string, unknown>;
  const fromFile = Object.keys(pp).filter((k) => k !== 'source' && preprocess.source[k] !== 'graph' && preprocess.source[k] !== 'default');
  const inBlock = Object.fromEntries(fromFile.filter((k) => k !== 'do_resize' && k !== 'do_rescale').map((k) => [k, pp[k]]));
  const said = (k: string) => `${preprocess.source[k]} gives ${show(pp[k])} for ${PROCESSOR_KEYS[k] ?? k}`;
  for (const p of checkAttrs(blockSchemaId('preprocess'), inBlock as Record<string, never>)) {
    const k = String(p.path[0]);
    const aspect = k === 'image_size' && typeof pp[k] === 'object' && pp[k] !== null && !Array.isArray(pp[k]);
    const why =
      k === 'resample' && typeof pp[k] === 'number'
        ? `a PIL filter blip-graph does not resize with (${Object.entries(RESAMPLE).map(([code, name]) => `${code} ${name}`).join(', ')})`
        : aspect
          ? // transformers 5 keeps the aspect ratio for {shortest_edge}; the encoder's position embeddings take one fixed size
            'an aspect-preserving resize, but the vision encoder takes one fixed {"height", "width"}'
          : `expected ${p.expected}`;
    problems.push({ code: 'BLIP4017', message: `${said(k)}: ${why}`, loc });
  }
  for (const k of ['do_resize', 'do_rescale']) if (fromFile.includes(k) && typeof pp[k] !== 'boolean') problems.push({ code: 'BLIP4017', message: `${said(k)}: expected true or false`, loc });
  // the encoder's position embeddings fix its input size (transformers does not interpolate them either)
  if (!problems.length && imageSize !== undefined && preprocess.image_size !== imageSize && preprocess.do_resize) {
    const graph = preprocess.source.image_size === 'graph';
    const from = graph ? "the graph's preprocess block gives" : `${preprocess.source.image_size} gives`;
    // at the preprocess block's image_size when the graph set it (not at the output line)
    const where = (graph ? preprocessLocs.image_size : undefined) ?? loc;
    problems.push({ code: 'BLIP4017', message: `${from} ${preprocess.image_size} for the image size, but the vision encoder takes ${imageSize} × ${imageSize} images`, loc: where });
  }

  if (generation) {
    const g = generation as unknown as Record<string, unknown>;
    for (const [key, , message] of errors(v.generation, generation)) {
      const value = g[key];
      const from = generation.source[key] === 'graph' ? "the graph's generation block" : 'generation_config.json';
      if (SAMPLING_ONLY.has(key) && !generation.do_sample && from === 'generation_config.json') {
        delete g[key];
        delete generation.source[key];
        warnings.push(`generation_config.json gives ${show(value)} for ${key}, which ${message}; left out, since the model does not sample (do_sample is false)`);
      } else problems.push({ code: 'BLIP4017', message: `${from} gives ${show(value)} for ${key}, which ${message}`, loc });
    }
  }
  const t = text as unknown as Record<string, unknown>;
  for (const [key, index, message] of errors(v.text, text)) {
    const value = index === undefined ? t[key] : (t[key] as unknown[])[index];
    problems.push({ code: 'BLIP4017', message: `${from(key)} is ${show(value)}, which ${message}`, loc });
  }
  if (vocab !== undefined && !problems.length) {
    const ids: Array<[string, number | undefined]> = [
      ['bos_token_id', text.bos_token_id],
      ['decoder_start_token_id', text.decoder_start_token_id],
      ['sep_token_id', text.sep_token_id],
      ['image_token_id', text.image_token_id],
      ...text.eos_token_id.map((id): [string, number] => ['eos_token_id', id]),
    ];
    for (const [key, id] of ids) {
      if (id !== undefined && (id < 0 || id >= vocab)) problems.push({ code: 'BLIP4017', message: `${from(key)} is ${id}, outside the language model's vocabulary of ${vocab} tokens`, loc });
    }
    // a negative pad id counts from the end of the embedding table, as a Gather reads it
    if (text.pad_token_id < -vocab || text.pad_token_id >= vocab) problems.push({ code: 'BLIP4017', message: `${from('pad_token_id')} is ${text.pad_token_id}, outside the language model's vocabulary of ${vocab} tokens`, loc });
  }
  return problems;
}
