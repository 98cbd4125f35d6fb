// Loading a checkpoint's tokenizer the way transformers 5's AutoTokenizer.from_pretrained does, and
// running it with @huggingface/tokenizers.
//
// transformers 5 tokenizer classes with their own __init__ (BertTokenizer, GPT2Tokenizer,
// T5Tokenizer, LlamaTokenizer) take only the vocabulary, the merges and the post-processor from
// tokenizer.json and rebuild normalizer, pre-tokenizer and decoder themselves from
// tokenizer_config.json; BERT and T5 also rebuild the post-processor. Special tokens named in the
// config are added as special added tokens when missing; add_bos_token / add_eos_token are ignored
// when tokenizer.json exists and otherwise rebuild the post-processor. A checkpoint with only a
// SentencePiece tokenizer.model gets its vocabulary and merges extracted from the protobuf. This
// module builds the equivalent tokenizer.json ("effective" JSON) and hands it to
// @huggingface/tokenizers for normalisation, pre-tokenisation and the model; the post-processing
// (special tokens by id), padding and decoding (Rust `Tokenizer::decode` semantics: unknown ids
// dropped, special tokens skipped on request, then transformers' optional clean-up) are done here.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as hfTokenizers from '@huggingface/tokenizers';
import { PrecompiledCharsmap } from './precompiled.js';

// The package's .d.ts files use extension-less relative imports, which NodeNext resolution cannot
// follow: describe the small surface used here.
interface JsEncoding {
  ids: number[];
  tokens: string[];
}
interface JsTokenizer {
  normalizer: object | null;
  decoder: object | null;
  encode(text: string, options?: { add_special_tokens?: boolean }): JsEncoding;
  token_to_id(token: string): number | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}
type Ctor = new (...args: never[]) => object;
const lib = hfTokenizers as unknown as {
  Tokenizer: new (json: object, config: object) => JsTokenizer;
  ByteFallbackDecoder: Ctor;
  PrecompiledNormalizer: Ctor;
  BertNormalizer: Ctor;
  ByteLevelPreTokenizer: Ctor;
  WhitespaceSplitPreTokenizer: Ctor;
};
import { BlipRuntimeError, TokenizerLoadError } from '../errors.js';
import { readJsonFile as readJsonOrProblem } from '../../src/jsonSyntax.js';
import { generateMerges, parseSentencePieceModel, PieceType, type SpModel } from './sentencepiece.js';
import { isCjk } from './cjk.js';

export type TokenizerClass = 'BertTokenizer' | 'GPT2Tokenizer' | 'T5Tokenizer' | 'LlamaTokenizer' | 'TokenizersBackend';

type Json = Record<string, unknown>;

/** An added token as tokenizer.json stores it. */
export interface AddedTokenSpec {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

type TokenValue = { content: string; single_word?: boolean; lstrip?: boolean; rstrip?: boolean; normalized?: boolean; special?: boolean };

const SPECIAL_ATTRS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;
export type SpecialName = (typeof SPECIAL_ATTRS)[number];

const CLASS_DEFAULTS: Record<TokenizerClass, Partial<Record<SpecialName, string>>> = {
  BertTokenizer: { unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]' },
  GPT2Tokenizer: { unk_token: '<|endoftext|>', bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' },
  T5Tokenizer: { eos_token: '</s>', unk_token: '<unk>', pad_token: '<pad>' },
  LlamaTokenizer: { unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>' },
  TokenizersBackend: {},
};

const CLASS_ALIASES: Record<string, TokenizerClass> = {
  BertTokenizer: 'BertTokenizer',
  BertTokenizerFast: 'BertTokenizer',
  GPT2Tokenizer: 'GPT2Tokenizer',
  GPT2TokenizerFast: 'GPT2Tokenizer',
  T5Tokenizer: 'T5Tokenizer',
  T5TokenizerFast: 'T5Tokenizer',
  LlamaTokenizer: 'LlamaTokenizer',
  LlamaTokenizerFast: 'LlamaTokenizer',
  PreTrainedTokenizerFast: 'TokenizersBackend',
  TokenizersBackend: 'TokenizersBackend',
};

/** The files of a tokenizer directory, already read. */
export interface TokenizerFiles {
  /** Directory or label for messages. */
  source: string;
  config: Json;
  tokenizerJson?: Json;
  spModel?: SpModel;
  /**
   * A tokenizer saved without tokenizer.json: BERT's vocab.txt (WordPiece) or GPT-2 / OPT's vocab.json
   * + merges.txt (byte-level BPE), read as the tokenizers library reads them.
   */
  vocabFiles?: { kind: 'wordpiece'; vocab: Map<string, number> } | { kind: 'bpe'; vocab: Map<string, number>; merges: string[][] };
  specialTokensMap?: Json;
  addedTokensJson?: Record<string, number>;
}

function readJsonFile(path: string): Json {
  const read = readJsonOrProblem(path);
  if (read.problem !== undefined) throw new TokenizerLoadError(`${path} ${read.problem}`, path);
  const v = read.value;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new TokenizerLoadError(`${path} does not hold a JSON object`, path);
  return v as Json;
}

/** The files a tokenizer folder may hold (a compiled model copies those present). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'added_tokens.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'spiece.model'];

/**
 * What a tokenizer is built from, in the order readTokenizerFiles tries them: the first whose files
 * are all present. tokenizer_config.json, special_tokens_map.json and added_tokens.json only adjust one.
 */
const TOKENIZER_SOURCES = [['tokenizer.json'], ['tokenizer.model'], ['spiece.model'], ['vocab.txt'], ['vocab.json', 'merges.txt']];

const tokenizerSource = (dir: string): string | undefined => TOKENIZER_SOURCES.find((files) => files.every((f) => existsSync(join(dir, f))))?.[0];

/** Whether `dir` holds files a tokenizer is built from (readTokenizerFiles would find one). */
export const hasTokenizer = (dir: string): boolean => tokenizerSource(dir) !== undefined;

/** Read tokenizer.json / tokenizer.model / tokenizer_config.json / special_tokens_map.json / added_tokens.json. */
export function readTokenizerFiles(dir: string): TokenizerFiles {
  if (!existsSync(dir)) throw new TokenizerLoadError(`tokenizer directory ${dir} does not exist`, dir);
  const p = (f: string): string => join(dir, f);
  const files: TokenizerFiles = { source: dir, config: existsSync(p('tokenizer_config.json')) ? readJsonFile(p('tokenizer_config.json')) : {} };
  const source = tokenizerSource(dir);
  if (source === 'tokenizer.json') files.tokenizerJson = readJsonFile(p(source));
  else if (source === 'tokenizer.model' || source === 'spiece.model') files.spModel = parseSentencePieceModel(readFileSync(p(source)), p(source)); // (spiece.model: T5's name for it)
  else if (source === 'vocab.txt') files.vocabFiles = { kind: 'wordpiece', vocab: readWordPieceVocab(p(source)) };
  else if (source === 'vocab.json') files.vocabFiles = { kind: 'bpe', vocab: readBpeVocab(p(source)), merges: readMerges(p('merges.txt')) };
  else {
    throw new TokenizerLoadError(
      `${dir} has no tokenizer: tokenizer.json, a SentencePiece tokenizer.model (T5: spiece.model), BERT's vocab.txt or GPT-2's vocab.json with merges.txt expected`,
      dir,
    );
  }
  if (existsSync(p('special_tokens_map.json'))) files.specialTokensMap = readJsonFile(p('special_tokens_map.json'));
  if (existsSync(p('added_tokens.json'))) files.addedTokensJson = readJsonFile(p('added_tokens.json')) as Record<string, number>;
  return files;
}

/** vocab.txt as tokenizers' WordPiece.read_file reads it: one token a line (trailing whitespace trimmed), ids in line order. */
function readWordPieceVocab(path: string): Map<string, number> {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const vocab = new Map<string, number>();
  lines.forEach((line, i) => vocab.set(line.trimEnd(), i));
  if (!vocab.size) throw new TokenizerLoadError(`${path} holds no tokens`, path);
  return vocab;
}

/** vocab.json: {token: id}. */
function readBpeVocab(path: string): Map<string, number> {
  const json = readJsonFile(path);
  const vocab = new Map<string, number>();
  for (const [k, v] of Object.entries(json)) {
    if (!Number.isInteger(v) || (v as number) < 0) throw new TokenizerLoadError(`${path}: token ${JSON.stringify(k)} has id ${JSON.stringify(v)}, not a non-negative integer`, path);
    vocab.set(k, v as number);
  }
  return vocab;
}

/** merges.txt as tokenizers' BPE.read_file reads it: "#version" lines skipped, each other line two tokens split by one space. */
function readMerges(path: string): string[][] {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const merges: string[][] = [];
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith('#version')) return;
    const parts = line.split(' ');
    if (parts.length !== 2) throw new TokenizerLoadError(`${path} line ${i + 1}: a merge is two tokens separated by one space, found ${JSON.stringify(line)}`, path);
    merges.push(parts);
  });
  return merges;
}

function tokenValue(v: unknown): TokenValue | null | undefined {
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v === 'string') return { content: v };
  if (typeof v === 'object' && !Array.isArray(v) && typeof (v as Json).content === 'string') return v as TokenValue;
  return undefined;
}

function classOf(files: TokenizerFiles): TokenizerClass {
  const name = files.config.tokenizer_class;
  if (typeof name === 'string') {
    const c = Object.hasOwn(CLASS_ALIASES, name) ? CLASS_ALIASES[name] : undefined;
    if (c) return c;
    if (files.tokenizerJson) return 'TokenizersBackend';
    throw new TokenizerLoadError(`${files.source}: tokenizer class ${name} cannot be built from ${files.vocabFiles ? (files.vocabFiles.kind === 'wordpiece' ? 'vocab.txt' : 'vocab.json and merges.txt') : 'tokenizer.model'} alone; tokenizer.json expected`, files.source);
  }
  if (files.tokenizerJson) return 'TokenizersBackend';
  if (files.vocabFiles) return files.vocabFiles.kind === 'wordpiece' ? 'BertTokenizer' : 'GPT2Tokenizer';
  return 'LlamaTokenizer';
}

function prependScheme(addPrefixSpace: boolean, legacy: boolean): 'always' | 'first' | 'never' {
  if (!addPrefixSpace) return 'never';
  return legacy ? 'always' : 'first';
}

interface ModelParts {
  model: Json;
  vocabSize: number;
  /** content -> id of the model vocabulary */
  vocab: Map<string, number>;
  /** extra special tokens implied by the model files (SentencePiece control / user pieces) */
  spmAdded?: TokenValue[];
  precompiledCharsmap?: string;
}

// The tokenizers model each class builds in its __init__, from whichever files gave the vocabulary.
type Vocab = Map<string, number>;
const wordPieceModel = (vocab: Vocab, unk: string | undefined): Json => ({ type: 'WordPiece', unk_token: unk ?? '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab) });
const byteLevelBpeModel = (vocab: Vocab, merges: unknown[]): Json => ({ type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: Object.fromEntries(vocab), merges });
const llamaBpeModel = (vocab: Vocab, merges: unknown[]): Json => ({ type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: Object.fromEntries(vocab), merges });
const t5UnigramModel = (scoredPieces: unknown[]): Json => ({ type: 'Unigram', unk_id: 2, byte_fallback: false, vocab: scoredPieces });
const sizeOf = (vocab: Vocab): number => Math.max(-1, ...vocab.values()) + 1;

function modelParts(cls: TokenizerClass, files: TokenizerFiles, unkToken: string | undefined): ModelParts {
  const tj = files.tokenizerJson;
  if (tj) {
    const m = tj.model as Json | undefined;
    if (!m || typeof m !== 'object') throw new TokenizerLoadError(`${files.source}/tokenizer.json has no "model"`, files.source);
    const vocab = new Map<string, number>();
    const rawVocab = m.vocab;
    if (Array.isArray(rawVocab)) rawVocab.forEach((e, i) => vocab.set(Array.isArray(e) ? String(e[0]) : String(e), i));
    else if (rawVocab && typeof rawVocab === 'object') for (const [k, v] of Object.entries(rawVocab as Record<string, number>)) vocab.set(k, v);
    else throw new TokenizerLoadError(`${files.source}/tokenizer.json model has no vocabulary`, files.source);
    let charsmap: string | undefined;
    const norm = tj.normalizer as Json | null | undefined;
    const norms = norm ? (norm.type === 'Sequence' ? (norm.normalizers as Json[]) : [norm]) : [];
    for (const n of norms) if (n && n.type === 'Precompiled' && typeof n.precompiled_charsmap === 'string') charsmap = n.precompiled_charsmap;
    const merges = (m.merges as unknown[] | undefined) ?? [];
    const size = sizeOf(vocab);
    switch (cls) {
      case 'BertTokenizer':
        return { model: wordPieceModel(vocab, unkToken), vocabSize: size, vocab };
      case 'GPT2Tokenizer':
        return { model: byteLevelBpeModel(vocab, merges), vocabSize: size, vocab };
      case 'LlamaTokenizer':
        return { model: llamaBpeModel(vocab, merges), vocabSize: size, vocab };
      case 'T5Tokenizer': {
        if (!Array.isArray(rawVocab)) throw new TokenizerLoadError(`${files.source}/tokenizer.json: T5Tokenizer needs a Unigram vocabulary`, files.source);
        return { model: t5UnigramModel(rawVocab), vocabSize: rawVocab.length, vocab, precompiledCharsmap: charsmap };
      }
      default:
        return { model: m, vocabSize: Array.isArray(rawVocab) ? rawVocab.length : size, vocab, precompiledCharsmap: charsmap };
    }
  }
  const vf = files.vocabFiles;
  if (vf) {
    const expected = vf.kind === 'wordpiece' ? 'BertTokenizer' : 'GPT2Tokenizer';
    if (cls !== expected) throw new TokenizerLoadError(`${files.source}: tokenizer class ${cls} cannot be built from ${vf.kind === 'wordpiece' ? 'vocab.txt' : 'vocab.json and merges.txt'}; tokenizer.json expected`, files.source);
    const model = vf.kind === 'wordpiece' ? wordPieceModel(vf.vocab, unkToken) : byteLevelBpeModel(vf.vocab, vf.merges);
    return { model, vocabSize: sizeOf(vf.vocab), vocab: vf.vocab };
  }
  const sp = files.spModel!;
  // control / user-defined pieces become added tokens (SentencePieceExtractor.extract)
  const spmAdded: TokenValue[] = sp.pieces
    .filter((p) => p.type === PieceType.CONTROL || p.type === PieceType.USER_DEFINED)
    .map((p) => ({ content: p.piece, normalized: false, special: p.type === PieceType.CONTROL }));
  if (cls === 'T5Tokenizer') {
    // T5Converter.convert_from_spm: the pieces with their scores, then <extra_id_N> from the last down
    const n = typeof files.config.extra_ids === 'number' ? files.config.extra_ids : 100;
    const scored: Array<[string, number]> = [...sp.pieces.map((p): [string, number] => [p.piece, p.score]), ...Array.from({ length: n }, (_, k): [string, number] => [`<extra_id_${n - 1 - k}>`, 0])];
    const vocab = new Map<string, number>();
    scored.forEach(([piece], i) => vocab.set(piece, i));
    const cm = sp.normalizer.precompiledCharsmap;
    return { model: t5UnigramModel(scored), vocabSize: scored.length, vocab, spmAdded, precompiledCharsmap: cm && cm.length ? Buffer.from(cm).toString('base64') : undefined };
  }
  if (cls !== 'LlamaTokenizer') throw new TokenizerLoadError(`${files.source}: only LLaMA- and T5-style tokenizers can be built from a SentencePiece model alone`, files.source);
  const vocab = new Map<string, number>();
  // transformers builds {piece: index} with a dict comprehension: a repeated piece keeps its last index
  sp.pieces.forEach((p, i) => vocab.set(p.piece, i));
  const merges = generateMerges(vocab).map(([a, b]) => [a, b]);
  return { model: llamaBpeModel(vocab, merges), vocabSize: sp.pieces.length, vocab, spmAdded };
}

/** Token ids and positions of a template post-processor, single-sequence form. */
export interface Template {
  /** ids before the sequence, ids after it */
  prefix: number[];
  suffix: number[];
}

function templateFromJson(pp: Json | null | undefined, source: string): Template | null {
  if (!pp) return null;
  const type = pp.type;
  if (type === 'Sequence') {
    let out: Template | null = null;
    for (const p of (pp.processors as Json[]) ?? []) {
      const t = templateFromJson(p, source);
      if (t) out = t;
    }
    return out;
  }
  if (type === 'ByteLevel') return null;
  if (type === 'BertProcessing' || type === 'RobertaProcessing') {
    const cls = pp.cls as [string, number];
    const sep = pp.sep as [string, number];
    return { prefix: [cls[1]], suffix: [sep[1]] };
  }
  if (type === 'TemplateProcessing') {
    const specials = (pp.special_tokens ?? {}) as Record<string, { ids: number[] }>;
    const prefix: number[] = [];
    const suffix: number[] = [];
    let seen = false;
    for (const item of pp.single as Json[]) {
      if ('Sequence' in item) seen = true;
      else if ('SpecialToken' in item) {
        const id = (item.SpecialToken as { id: string }).id;
        const ids = specials[id]?.ids;
        if (!ids) throw new TokenizerLoadError(`${source}: post-processor template names ${id} without its id`, source);
        (seen ? suffix : prefix).push(...ids);
      }
    }
    return { prefix, suffix };
  }
  throw new TokenizerLoadError(`${source}: post-processor type ${String(type)} is not supported`, source);
}

export interface LoadedTokenizer {
  cls: TokenizerClass;
  json: Json;
  template: Template;
  added: AddedTokenSpec[];
  specials: Partial<Record<string, { content: string; id: number }>>;
  extraSpecial: Array<{ content: string; id: number }>;
  paddingSide: 'left' | 'right';
  cleanUp: boolean;
  modelType: string;
  vocabSize: number;
}

/** Build the effective tokenizer (what transformers 5 would hold in `_tokenizer`) from the files. */
export function buildTokenizer(files: TokenizerFiles): LoadedTokenizer {
  const cls = classOf(files);
  const kw: Json = { ...files.config };
  if (files.tokenizerJson) {
    delete kw.add_bos_token;
    delete kw.add_eos_token;
  }
  if ('additional_special_tokens' in kw && !('extra_special_tokens' in kw)) kw.extra_special_tokens = kw.additional_special_tokens;
  delete kw.additional_special_tokens;

  // added tokens recorded by the checkpoint
  const decoderEntries: Array<[number, TokenValue]> = [];
  if (kw.added_tokens_decoder && typeof kw.added_tokens_decoder === 'object') {
    for (const [k, v] of Object.entries(kw.added_tokens_decoder as Json)) {
      const t = tokenValue(v);
      if (t) decoderEntries.push([Number(k), t]);
    }
  } else {
    if (files.specialTokensMap) {
      for (const [k, v] of Object.entries(files.specialTokensMap)) {
        if (k === 'extra_special_tokens' || k === 'additional_special_tokens') {
          const existing = Array.isArray(kw.extra_special_tokens) ? [...(kw.extra_special_tokens as unknown[])] : [];
          for (const t of (Array.isArray(v) ? v : []) as unknown[]) {
            const tv = tokenValue(t);
            if (tv && !existing.some((e) => tokenValue(e)?.content === tv.content)) existing.push({ ...tv, special: true });
          }
          kw.extra_special_tokens = existing;
        } else {
          const tv = tokenValue(v);
          kw[k] = tv && typeof v === 'object' ? { ...tv, special: true } : v;
        }
      }
    }
    if (files.addedTokensJson) {
      const named = new Set<string>();
      for (const a of SPECIAL_ATTRS) {
        const t = tokenValue(kw[a]);
        if (t) named.add(t.content);
      }
      for (const t of (kw.extra_special_tokens as unknown[] | undefined) ?? []) {
        const tv = tokenValue(t);
        if (tv) named.add(tv.content);
      }
      for (const [content, idx] of Object.entries(files.addedTokensJson)) {
        const special = named.has(content);
        decoderEntries.push([idx, { content, normalized: !special, special, lstrip: false, rstrip: false }]);
      }
    }
    for (const t of (files.tokenizerJson?.added_tokens as AddedTokenSpec[] | undefined) ?? []) decoderEntries.push([t.id, { ...t }]);
  }
  const addedByContent = new Map<string, TokenValue>();
  for (const [, t] of decoderEntries) addedByContent.set(t.content, t);

  // named special tokens: config value, else the class default
  const named: Array<[string, TokenValue]> = [];
  const defaults = CLASS_DEFAULTS[cls];
  for (const a of SPECIAL_ATTRS) {
    const v = a in kw ? tokenValue(kw[a]) : defaults[a] !== undefined ? { content: defaults[a]! } : undefined;
    if (v) named.push([a, addedByContent.get(v.content) ?? v]);
  }
  for (const [k, v] of Object.entries(kw)) {
    if (k.endsWith('_token') && !(SPECIAL_ATTRS as readonly string[]).includes(k)) {
      const tv = tokenValue(v);
      if (tv) named.push([k, addedByContent.get(tv.content) ?? tv]);
    }
  }
  let extras: TokenValue[] = [];
  const extraKw = kw.extra_special_tokens;
  if (extraKw && typeof extraKw === 'object' && !Array.isArray(extraKw)) {
    for (const [k, v] of Object.entries(extraKw as Json)) {
      const tv = tokenValue(v);
      if (tv) named.push([k, tv]);
    }
  } else if (Array.isArray(extraKw)) {
    extras = extraKw.map(tokenValue).filter((t): t is TokenValue => !!t);
  }

  const unk = named.find(([k]) => k === 'unk_token')?.[1].content;
  const parts = modelParts(cls, files, unk);
  if (cls === 'T5Tokenizer' && !Array.isArray(extraKw)) {
    const n = typeof kw.extra_ids === 'number' ? kw.extra_ids : 100;
    extras = Array.from({ length: n }, (_, i) => ({ content: `<extra_id_${i}>` }));
  }
  // T5 from its spiece.model: the SentencePiece control pieces, then the sentinels (T5Tokenizer.__init__
  // appends them to additional_special_tokens that name none)
  if (parts.spmAdded && !Array.isArray(extraKw)) extras = cls === 'T5Tokenizer' ? [...parts.spmAdded, ...extras] : parts.spmAdded;

  // add tokens as TokenizersBackend.__init__ and _post_init do (Rust AddedVocabulary ids)
  const added: AddedTokenSpec[] = [];
  const addedIndex = new Map<string, AddedTokenSpec>();
  let nextId = parts.vocabSize;
  const namedContents = new Set(named.map(([, t]) => t.content));
  const add = (t: TokenValue, forceSpecial: boolean): void => {
    const existing = addedIndex.get(t.content);
    if (existing) {
      if (forceSpecial) existing.special = true;
      return;
    }
    const special = forceSpecial || t.special === true || namedContents.has(t.content);
    const id = parts.vocab.get(t.content) ?? nextId++;
    if (id >= nextId) nextId = id + 1;
    const spec: AddedTokenSpec = {
      id,
      content: t.content,
      single_word: t.single_word ?? false,
      lstrip: t.lstrip ?? false,
      rstrip: t.rstrip ?? false,
      normalized: t.normalized ?? !special,
      special,
    };
    added.push(spec);
    addedIndex.set(t.content, spec);
  };
  decoderEntries.sort((a, b) => a[0] - b[0]);
  for (const [, t] of decoderEntries) add(t, false);
  for (const [, t] of named) add(t, true);
  for (const t of extras) add(t, true);

  const idOf = (content: string): number | undefined => addedIndex.get(content)?.id ?? parts.vocab.get(content);
  const specials: LoadedTokenizer['specials'] = {};
  for (const [k, t] of named) {
    const id = idOf(t.content);
    if (id !== undefined) specials[k] = { content: t.content, id };
  }
  const extraSpecial = extras.map((t) => ({ content: t.content, id: idOf(t.content)! }));

  // normaliser, pre-tokeniser, decoder as the class builds them
  const bool = (v: unknown, d: boolean): boolean => (typeof v === 'boolean' ? v : d);
  let normalizer: Json | null = null;
  let preTokenizer: Json | null = null;
  let decoder: Json | null = null;
  let template: Template | null = null;
  const tj = files.tokenizerJson;
  switch (cls) {
    case 'BertTokenizer':
      normalizer = {
        type: 'BertNormalizer',
        clean_text: true,
        handle_chinese_chars: bool(kw.tokenize_chinese_chars, true),
        strip_accents: typeof kw.strip_accents === 'boolean' ? kw.strip_accents : null,
        lowercase: bool(kw.do_lower_case, true),
      };
      preTokenizer = { type: 'BertPreTokenizer' };
      decoder = { type: 'WordPiece', prefix: '##', cleanup: true };
      template = { prefix: [specials.cls_token?.id ?? 2], suffix: [specials.sep_token?.id ?? 3] };
      break;
    case 'GPT2Tokenizer':
      preTokenizer = { type: 'ByteLevel', add_prefix_space: bool(kw.add_prefix_space, false), trim_offsets: true, use_regex: true };
      decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
      break;
    case 'T5Tokenizer':
      if (parts.precompiledCharsmap) normalizer = { type: 'Precompiled', precompiled_charsmap: parts.precompiledCharsmap };
      preTokenizer = { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }] };
      decoder = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
      template = { prefix: [], suffix: [specials.eos_token?.id ?? 1] };
      break;
    case 'LlamaTokenizer': {
      const addPrefixSpace = typeof kw.add_prefix_space === 'boolean' ? kw.add_prefix_space : true;
      const legacy = bool(kw.legacy, false);
      preTokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: prependScheme(addPrefixSpace, legacy), split: false };
      const seq: Json[] = [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }];
      if (addPrefixSpace) seq.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
      decoder = { type: 'Sequence', decoders: seq };
      break;
    }
    default:
      normalizer = (tj?.normalizer as Json | null) ?? null;
      preTokenizer = (tj?.pre_tokenizer as Json | null) ?? null;
      decoder = (tj?.decoder as Json | null) ?? null;
  }
  if (!template) {
    const fromJson = tj && 'post_processor' in tj ? (tj.post_processor as Json | null) : null;
    const explicit = 'add_bos_token' in kw || 'add_eos_token' in kw;
    if (fromJson && !explicit) template = templateFromJson(fromJson, files.source) ?? { prefix: [], suffix: [] };
    else {
      // update_post_processor(): bos/eos as add_bos_token / add_eos_token say (default false)
      const bos = kw.add_bos_token === true ? specials.bos_token?.id : undefined;
      const eos = kw.add_eos_token === true ? specials.eos_token?.id : undefined;
      template = { prefix: bos !== undefined ? [bos] : [], suffix: eos !== undefined ? [eos] : [] };
    }
  }

  const json: Json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.slice().sort((a, b) => a.id - b.id),
    normalizer,
    pre_tokenizer: preTokenizer,
    post_processor: null,
    decoder,
    model: parts.model,
  };
  const paddingSide = kw.padding_side === 'left' || kw.padding_side === 'right' ? kw.padding_side : cls === 'LlamaTokenizer' ? 'left' : 'right';
  return {
    cls,
    json,
    template,
    added,
    specials,
    extraSpecial,
    paddingSide,
    cleanUp: kw.clean_up_tokenization_spaces === true,
    modelType: String((parts.model as Json).type ?? ''),
    vocabSize: parts.vocabSize,
  };
}

export interface EncodeOptions {
  /** Add the tokenizer's special tokens ([CLS]/[SEP], <s>, </s>...) as its post-processor says (default true). */
  addSpecialTokens?: boolean;
  /**
   * At most this many ids, special tokens included: the text's tokens are cut from the end, as
   * transformers' tokenizer(text, truncation=True, max_length=N) does.
   */
  maxLength?: number;
}

export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
  /** transformers' clean_up_tokenization (default: the tokenizer config's, ignored for BPE models). */
  cleanUpTokenizationSpaces?: boolean;
}

/** A loaded tokenizer with transformers 5 semantics. */
export class HfTokenizer {
  /** The underlying @huggingface/tokenizers instance (rebuilt when a token is added). */
  tokenizer: JsTokenizer;
  private readonly idToContent = new Map<number, string>();
  private readonly specialIds = new Set<number>();
  private readonly decodeFn: ((tokens: string[]) => string) | null;

  constructor(
    readonly loaded: LoadedTokenizer,
    readonly source = 'tokenizer',
  ) {
    try {
      this.tokenizer = new lib.Tokenizer(loaded.json, { clean_up_tokenization_spaces: false });
    } catch (e) {
      throw new TokenizerLoadError(`${source}: cannot build the tokenizer (${(e as Error).message})`, source);
    }
    for (const [content, id] of this.tokenizer.get_vocab(false)) this.idToContent.set(id, content);
    for (const a of loaded.added) {
      this.idToContent.set(a.id, a.content);
      if (a.special) this.specialIds.add(a.id);
    }
    const dec = this.tokenizer.decoder;
    if (dec) patchDecoder(dec);
    if (this.tokenizer.normalizer) patchNormalizer(this.tokenizer.normalizer, source);
    const pre = (this.tokenizer as unknown as { pre_tokenizer: object | null }).pre_tokenizer;
    if (pre) patchPreTokenizer(pre);
    this.decodeFn = dec ? (tokens: string[]) => (dec as unknown as (t: string[]) => string)(tokens) : null;
  }

  get tokenizerClass(): TokenizerClass {
    return this.loaded.cls;
  }
  /** Size of the model vocabulary without added tokens (transformers' vocab_size). */
  get vocabSize(): number {
    return this.loaded.vocabSize;
  }
  /** Vocabulary size with added tokens (transformers' len(tokenizer)). */
  get length(): number {
    let max = this.loaded.vocabSize - 1;
    for (const a of this.loaded.added) if (a.id > max) max = a.id;
    return Math.max(this.loaded.vocabSize, max + 1);
  }
  get paddingSide(): 'left' | 'right' {
    return this.loaded.paddingSide;
  }
  /** Id of a named special token (bos_token, eos_token, pad_token, ...), if the tokenizer has one. */
  specialId(name: string): number | undefined {
    return this.loaded.specials[name]?.id;
  }
  specialToken(name: string): string | undefined {
    return this.loaded.specials[name]?.content;
  }
  get bosTokenId(): number | undefined {
    return this.specialId('bos_token');
  }
  get eosTokenId(): number | undefined {
    return this.specialId('eos_token');
  }
  get padTokenId(): number | undefined {
    return this.specialId('pad_token');
  }
  get unkTokenId(): number | undefined {
    return this.specialId('unk_token');
  }
  get sepTokenId(): number | undefined {
    return this.specialId('sep_token');
  }
  get clsTokenId(): number | undefined {
    return this.specialId('cls_token');
  }
  /** Every id flagged special (transformers' all_special_ids, as a set). */
  get allSpecialIds(): number[] {
    return [...this.specialIds].sort((a, b) => a - b);
  }
  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token) ?? this.loaded.added.find((a) => a.content === token)?.id;
  }
  idToToken(id: number): string | undefined {
    return this.idToContent.get(id);
  }

  /** Add a special token if missing (what BLIP-2 processors do for `<image>`); returns its id. */
  addSpecialToken(content: string): number {
    const have = this.tokenToId(content);
    if (have !== undefined && this.loaded.added.some((a) => a.content === content)) return have;
    const id = have ?? this.length;
    const spec: AddedTokenSpec = { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
    this.loaded.added.push(spec);
    (this.loaded.json.added_tokens as AddedTokenSpec[]).push(spec);
    this.tokenizer = new HfTokenizer(this.loaded, this.source).tokenizer;
    this.idToContent.set(id, content);
    this.specialIds.add(id);
    return id;
  }

  /** How many special tokens encode() adds around a text ([CLS] and [SEP]: 2). */
  get specialTokenCount(): number {
    return this.loaded.template.prefix.length + this.loaded.template.suffix.length;
  }

  /** Token strings of a text (no special tokens). */
  tokenize(text: string): string[] {
    return this.encodeText(text).tokens;
  }

  /**
   * The library's encoding of a text without special tokens. It spreads each word's tokens into a
   * call's arguments, so a word of some 100,000 tokens (a megabyte of CJK has no spaces) overflows
   * the stack: that is a BLIP5032 that says so, not a RangeError.
   */
  private encodeText(text: string): { ids: number[]; tokens: string[] } {
    try {
      return this.tokenizer.encode(text, { add_special_tokens: false });
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw new BlipRuntimeError(
        'BLIP5032',
        `${this.source}: a text of ${text.length.toLocaleString('en-US')} characters is too long to tokenize (${e.message}): shorten it or split its longest run without spaces`,
        this.source,
      );
    }
  }

  /** transformers' tokenizer(text)["input_ids"]. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const enc = this.encodeText(text);
    const ids = enc.ids.map((id, i) => {
      if (id === undefined || id === null || Number.isNaN(id)) {
        throw new TokenizerLoadError(`${this.source}: token ${JSON.stringify(enc.tokens[i])} has no id and the tokenizer has no unknown token`, this.source);
      }
      return id;
    });
    const { prefix, suffix } = this.loaded.template;
    const specials = opts.addSpecialTokens === false ? 0 : prefix.length + suffix.length;
    if (opts.maxLength !== undefined && ids.length + specials > opts.maxLength) ids.length = Math.max(0, opts.maxLength - specials);
    if (opts.addSpecialTokens === false) return ids;
    return [...prefix, ...ids, ...suffix];
  }

  /** transformers' tokenizer(texts, padding="longest"): pads with pad_token_id on the tokenizer's padding side. */
  encodeBatch(texts: string[], opts: EncodeOptions & { paddingSide?: 'left' | 'right'; padTokenId?: number } = {}): BatchEncoding {
    const rows = texts.map((t) => this.encode(t, opts));
    const len = Math.max(0, ...rows.map((r) => r.length));
    const pad = opts.padTokenId ?? this.padTokenId;
    const side = opts.paddingSide ?? this.paddingSide;
    if (pad === undefined && rows.some((r) => r.length !== len)) {
      throw new TokenizerLoadError(`${this.source}: the texts have different lengths and the tokenizer has no pad token`, this.source);
    }
    const inputIds: number[][] = [];
    const attentionMask: number[][] = [];
    for (const r of rows) {
      const n = len - r.length;
      const padIds = new Array<number>(n).fill(pad ?? 0);
      const zeros = new Array<number>(n).fill(0);
      const ones = new Array<number>(r.length).fill(1);
      inputIds.push(side === 'left' ? [...padIds, ...r] : [...r, ...padIds]);
      attentionMask.push(side === 'left' ? [...zeros, ...ones] : [...ones, ...zeros]);
    }
    return { inputIds, attentionMask };
  }

  /** Ids to tokens as Rust's Tokenizer::decode does: ids outside the vocabulary are dropped. */
  private tokensOf(ids: ArrayLike<number | bigint>, skipSpecial: boolean): string[] {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]);
      const t = this.idToContent.get(id);
      if (t === undefined) continue;
      if (skipSpecial && this.specialIds.has(id)) continue;
      out.push(t);
    }
    return out;
  }

  /** transformers' tokenizer.decode(ids, skip_special_tokens=...). */
  decode(ids: ArrayLike<number | bigint>, opts: DecodeOptions = {}): string {
    const tokens = this.tokensOf(ids, opts.skipSpecialTokens ?? false);
    let text = tokens.length === 0 ? '' : this.decodeFn ? this.decodeFn(tokens) : tokens.join(' ');
    const clean = opts.cleanUpTokenizationSpaces ?? this.loaded.cleanUp;
    if (clean && this.loaded.modelType !== 'BPE') text = cleanUpTokenization(text);
    return text;
  }

  batchDecode(rows: Array<ArrayLike<number | bigint>>, opts: DecodeOptions = {}): string[] {
    return rows.map((r) => this.decode(r, opts));
  }

  /**
   * The decode of `ids` as far as ids after them cannot change it: without a trailing run of
   * byte-fallback tokens (a later byte can make the run invalid UTF-8, which byte fallback turns
   * into U+FFFD as a whole, the bytes already shown too), without trailing U+FFFD (a byte-level
   * character whose bytes are still arriving), and, where clean_up_tokenization_spaces is on,
   * without the last word and the space before it (the next token can join them: "don '" + "t"
   * is "don't"). What stop strings are matched in and streams release.
   */
  decodeStable(ids: ArrayLike<number | bigint>, opts: DecodeOptions = {}): string {
    let end = ids.length;
    if ((this.loaded.json as { model?: Json }).model?.byte_fallback === true) {
      // back over the trailing byte tokens, and over the ids the decode drops (skipped special
      // tokens, ids outside the vocabulary), which do not end a run
      const skip = opts.skipSpecialTokens ?? false;
      for (let i = ids.length - 1; i >= 0; i--) {
        const id = Number(ids[i]);
        const t = this.idToContent.get(id);
        if (t === undefined || (skip && this.specialIds.has(id))) continue;
        if (!/^<0x[0-9A-Fa-f]{2}>$/.test(t)) break;
        end = i;
      }
    }
    const text = this.decode(end === ids.length ? ids : Array.prototype.slice.call(ids, 0, end), opts);
    let cut = text.length;
    while (cut > 0 && text.charCodeAt(cut - 1) === 0xfffd) cut--;
    if ((opts.cleanUpTokenizationSpaces ?? this.loaded.cleanUp) && this.loaded.modelType !== 'BPE') cut = Math.max(0, text.lastIndexOf(' ', cut - 1));
    return text.slice(0, cut);
  }

  /**
   * The bytes one token stands for (OpenAI's logprobs `bytes`): a byte-level BPE token's bytes, a
   * byte-fallback token's one byte, otherwise the UTF-8 of `text` (the token's text where it
   * stands; by default the token decoded alone). A character split over tokens is whole only in
   * their bytes joined.
   */
  tokenBytes(id: number, text?: string): number[] {
    const t = this.idToContent.get(id);
    if (t === undefined) return [];
    const json = this.loaded.json as { decoder?: Json | null; model?: Json };
    if (this.loaded.modelType === 'BPE' && !this.specialIds.has(id) && usesDecoder(json.decoder, 'ByteLevel')) {
      const table = unicodeToBytes();
      if ([...t].every((c) => table.has(c))) return [...t].map((c) => table.get(c)!);
    }
    const b = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
    if (b && json.model?.byte_fallback === true) return [parseInt(b[1], 16)];
    return [...new TextEncoder().encode(text ?? this.decode([id]))];
  }
}

/** Whether a decoder (or one in its Sequence) has this type. */
function usesDecoder(dec: Json | null | undefined, type: string): boolean {
  if (!dec) return false;
  if (dec.type === type) return true;
  return Array.isArray(dec.decoders) && (dec.decoders as Json[]).some((d) => usesDecoder(d, type));
}

let byteTable: Map<string, number> | undefined;
/** GPT-2's printable character of each byte, inverted (what ByteLevel tokens are spelt with). */
function unicodeToBytes(): Map<string, number> {
  if (byteTable) return byteTable;
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  byteTable = new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]), b]));
  return byteTable;
}

/**
 * Rust's ByteFallback decoder: a run of <0xNN> tokens becomes its UTF-8 string when the bytes are
 * valid UTF-8, and one U+FFFD per byte token otherwise (the JS library replaces only the invalid
 * sequences).
 */
function byteFallbackChain(tokens: string[]): string[] {
  const out: string[] = [];
  let bytes: number[] = [];
  // (ignoreBOM: a leading U+FEFF is text, as Rust's String::from_utf8 keeps it)
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const flush = (): void => {
    if (bytes.length === 0) return;
    try {
      out.push(strict.decode(Uint8Array.from(bytes)));
    } catch {
      for (let i = 0; i < bytes.length; i++) out.push('\ufffd');
    }
    bytes = [];
  };
  for (const t of tokens) {
    const b = t.length === 6 && t.startsWith('<0x') && t.endsWith('>') ? parseInt(t.slice(3, 5), 16) : NaN;
    if (Number.isInteger(b) && /^[0-9a-fA-F]{2}$/.test(t.slice(3, 5))) bytes.push(b);
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

/** Rust's char::is_whitespace (Unicode White_Space): JS's \s also counts U+FEFF and not U+0085. */
const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUNS = new RegExp(`[${WS}]+`, 'u');
/** GPT-2's pre-tokenizer pattern as Rust's regex engine reads it (\s as White_Space). */
const BYTE_LEVEL_PATTERN = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`, 'gu');

/**
 * Where the library's pre-tokenizers use JavaScript's \s, use Rust's White_Space: GPT-2's
 * byte-level split and WhitespaceSplit (T5) differ on U+0085 and U+FEFF otherwise.
 */
function patchPreTokenizer(pre: object): void {
  if (pre instanceof lib.ByteLevelPreTokenizer) (pre as unknown as { pattern: RegExp }).pattern = BYTE_LEVEL_PATTERN;
  if (pre instanceof lib.WhitespaceSplitPreTokenizer) (pre as unknown as { pre_tokenize_text: (t: string) => string[] }).pre_tokenize_text = (t: string) => t.split(WS_RUNS).filter((w) => w !== '');
  const subs = (pre as { tokenizers?: object[] }).tokenizers;
  if (Array.isArray(subs)) subs.forEach((p) => p && patchPreTokenizer(p));
}

/**
 * Replace the library's NFKC approximation of SentencePiece's charsmap with the exact lookup, and
 * BERT's CJK spacing, which the library applies per UTF-16 unit (missing the CJK extensions
 * beyond U+FFFF), with Rust's per character.
 */
function patchNormalizer(norm: object, source: string): void {
  if (norm instanceof lib.BertNormalizer) {
    (norm as unknown as { tokenize_chinese_chars: (t: string) => string }).tokenize_chinese_chars = (t: string) => {
      let out = '';
      for (const ch of t) out += isCjk(ch.codePointAt(0)!, 0x2b920) ? ` ${ch} ` : ch;
      return out;
    };
  }
  if (norm instanceof lib.PrecompiledNormalizer) {
    const b64 = (norm as unknown as { charsmap: string | null }).charsmap;
    if (b64) {
      let map: PrecompiledCharsmap;
      try {
        map = PrecompiledCharsmap.fromBase64(b64);
      } catch (e) {
        throw new TokenizerLoadError(`${source}: invalid precompiled_charsmap (${(e as Error).message})`, source);
      }
      (norm as unknown as { normalize: (t: string) => string }).normalize = (t: string) => map.normalize(t);
    }
  }
  const subs = (norm as { normalizers?: object[] }).normalizers;
  if (Array.isArray(subs)) subs.forEach((n) => patchNormalizer(n, source));
}

function patchDecoder(dec: object): void {
  if (dec instanceof lib.ByteFallbackDecoder) (dec as unknown as { decode_chain: (t: string[]) => string[] }).decode_chain = byteFallbackChain;
  const subs = (dec as { decoders?: object[] }).decoders;
  if (Array.isArray(subs)) subs.forEach(patchDecoder);
}

/** transformers' PreTrainedTokenizerBase.clean_up_tokenization. */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

/** Load the tokenizer in `dir` (tokenizer.json or tokenizer.model, tokenizer_config.json, ...). */
export function loadTokenizer(dir: string): HfTokenizer {
  const files = readTokenizerFiles(dir);
  return new HfTokenizer(buildTokenizer(files), dir);
}
