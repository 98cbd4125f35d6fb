// Request validation and response shapes of the OpenAI-compatible endpoints.
import { randomBytes, randomUUID } from 'node:crypto';
import { rowSeed } from '../tasks/generate.js';
import { stopList } from '../generation/stopStrings.js';
import { MAX_TOP_LOGPROBS } from '../generation/generate.js';
import type { ModelEntry } from './catalog.js';
import { promptFacts } from './catalog.js';
import { ApiError, badRequest } from './errors.js';
import { resolveImageUrl, type ImageBytes, type ImageUrlOptions } from './images.js';
import type { EmbedItem, GenSettings, GenValue } from './protocol.js';
import { modelPhrase } from '../../src/artifact/manifest.js';

export interface Ctx {
  models: Map<string, ModelEntry>;
  images: ImageUrlOptions;
  /** Most sequences per request (n). */
  maxN: number;
  /** Most texts / inputs per ITM or embeddings request. */
  maxInputs: number;
  /** Most characters of one text, checked before tokenizing (--max-text-chars). */
  maxTextChars: number;
}

/** A text longer than the server tokenizes: refused before tokenizing (which would block every request). */
function checkTextChars(ctx: Ctx, text: string, param: string): void {
  if (text.length > ctx.maxTextChars) {
    throw badRequest(`${param} is ${text.length} characters; this server takes at most ${ctx.maxTextChars} characters of text (--max-text-chars)`, param, 'context_length_exceeded');
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function body(b: unknown): Obj {
  if (!isObj(b)) throw badRequest(`the request body must be a JSON object, found ${Array.isArray(b) ? 'an array' : b === null ? 'null' : typeof b}`, null, 'invalid_json');
  return b;
}

export function pickModel(ctx: Ctx, b: Obj, need: 'generate' | 'itm' | 'itc' | 'itm_or_itc'): ModelEntry {
  let id = b.model;
  if (id === undefined || id === null) {
    if (ctx.models.size === 1) id = [...ctx.models.keys()][0];
    else throw badRequest(`model is required: one of ${[...ctx.models.keys()].join(', ')}`, 'model', 'missing_model');
  }
  if (typeof id !== 'string') throw badRequest(`model must be a string, found ${typeof id}`, 'model');
  const e = ctx.models.get(id);
  if (!e) throw new ApiError(404, `The model '${id}' does not exist; this server has ${[...ctx.models.keys()].join(', ')} (GET /v1/models)`, 'invalid_request_error', 'model_not_found', 'model');
  const what = `${e.id} is ${modelPhrase(e.manifest)} (outputs: ${e.manifest.outputs.map((o) => o.task).join(', ')})`;
  if (need === 'generate' && !e.tasks.generate) throw badRequest(`${what}: it does not generate text; use POST /v1/itm or /v1/embeddings`, 'model', 'wrong_model_task');
  if (need === 'itc' && !e.tasks.itc) throw badRequest(`${what}: it has no ITC head to compute embeddings`, 'model', 'wrong_model_task');
  if (need === 'itm' && !e.tasks.itm) throw badRequest(`${what}: it has no ITM head`, 'model', 'wrong_model_task');
  if (need === 'itm_or_itc' && !e.tasks.itm && !e.tasks.itc) throw badRequest(`${what}: it scores no image-text pairs (no ITM or ITC head); use POST /v1/chat/completions`, 'model', 'wrong_model_task');
  return e;
}

function optNumber(b: Obj, name: string, min: number, max: number, integer = false): number | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw badRequest(`${name} must be ${integer ? 'an integer' : 'a number'}, found ${JSON.stringify(v)}`, name);
  if (v < min || v > max) throw badRequest(`${name} must be between ${min} and ${max}, found ${v}`, name);
  return v;
}

function imageRef(v: unknown, param: string): unknown {
  // "url", { url }, { image_url: { url } | "url" }, { type: "image_url", image_url: ... }; an
  // image_url nests once (a loop, not recursion: a body nested 20000 deep exhausted the stack)
  for (let depth = 0; depth < 2; depth++) {
    if (typeof v === 'string') return v;
    if (!isObj(v)) break;
    if ('image_url' in v && depth === 0) {
      v = v.image_url;
      param = `${param}.image_url`;
      continue;
    }
    if ('url' in v) return v.url;
    break;
  }
  throw badRequest(`${param} must be an image URL string or {"url": ...}`, param, 'invalid_image_url');
}

// ---- chat completions ------------------------------------------------------------------------

export interface ChatPlan {
  entry: ModelEntry;
  image: ImageBytes;
  prompt: string | null;
  settings: GenSettings;
  seeds: number[];
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  key: string;
}

const UNSUPPORTED: Array<[string, (v: unknown) => boolean, string]> = [
  ['tools', (v) => Array.isArray(v) && v.length > 0, 'tools are not supported'],
  ['functions', (v) => Array.isArray(v) && v.length > 0, 'functions are not supported'],
  ['response_format', (v) => isObj(v) && v.type !== 'text', 'only the text response format is supported'],
  ['frequency_penalty', (v) => v !== 0 && v !== null, 'frequency_penalty is not supported (use 0)'],
  ['presence_penalty', (v) => v !== 0 && v !== null, 'presence_penalty is not supported (use 0)'],
  ['logit_bias', (v) => isObj(v) && Object.keys(v).length > 0, 'logit_bias is not supported'],
  ['audio', (v) => v !== null, 'audio output is not supported'],
];

export async function parseChat(ctx: Ctx, raw: unknown): Promise<ChatPlan> {
  const b = body(raw);
  const entry = pickModel(ctx, b, 'generate');
  for (const [name, bad, why] of UNSUPPORTED) if (b[name] !== undefined && bad(b[name])) throw badRequest(`${name}: ${why} by this server`, name, 'unsupported_parameter');
  const msgs = b.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) throw badRequest('messages must be a non-empty array', 'messages');
  const images: Array<{ url: unknown; param: string }> = [];
  let lastUserText: string[] | null = null;
  msgs.forEach((m, i) => {
    const p = `messages[${i}]`;
    if (!isObj(m)) throw badRequest(`${p} must be an object with role and content`, p);
    const role = m.role;
    if (typeof role !== 'string' || !['system', 'developer', 'user', 'assistant', 'tool'].includes(role)) {
      throw badRequest(`${p}.role must be one of system, developer, user, assistant, tool; found ${JSON.stringify(role)}`, `${p}.role`);
    }
    const c = m.content;
    const texts: string[] = [];
    if (typeof c === 'string') texts.push(c);
    else if (Array.isArray(c)) {
      c.forEach((part, j) => {
        const pp = `${p}.content[${j}]`;
        if (!isObj(part) || typeof part.type !== 'string') throw badRequest(`${pp} must be a content part with a type`, pp);
        if (part.type === 'text') {
          if (typeof part.text !== 'string') throw badRequest(`${pp}.text must be a string`, `${pp}.text`);
          texts.push(part.text);
        } else if (part.type === 'image_url') {
          if (role !== 'user') throw badRequest(`${pp}: images are only read from user messages`, pp, 'unsupported_content_type');
          images.push({ url: imageRef(part.image_url, `${pp}.image_url`), param: `${pp}.image_url` });
        } else {
          throw badRequest(`${pp}: content type ${JSON.stringify(part.type)} is not supported; use text and image_url parts`, `${pp}.type`, 'unsupported_content_type');
        }
      });
    } else if (c !== null && c !== undefined) {
      throw badRequest(`${p}.content must be a string or an array of content parts`, `${p}.content`);
    } else if (role === 'user') {
      throw badRequest(`${p}.content is required`, `${p}.content`);
    }
    if (role === 'user') lastUserText = texts;
  });
  if (lastUserText === null) throw badRequest('messages has no user message', 'messages');
  if (images.length === 0) throw badRequest(`${entry.id} answers about an image: add an image_url content part (data:image/...;base64,...) to the user message`, 'messages', 'missing_image');
  if (images.length > 1) throw badRequest(`one image per request, found ${images.length}; send one request per image`, images[1].param, 'too_many_images');

  const userText = (lastUserText as string[]).join('\n').trim();
  const gen = entry.manifest.generation;
  const prompt = userText !== '' ? userText : (gen?.prompt ?? null);
  if (userText !== '' && entry.style?.none) throw badRequest(`${entry.id} takes no text: its graph reads no text input, so it describes the image alone; send the image without a text part`, 'messages', 'unexpected_prompt');
  if (prompt === null && entry.style?.required) throw badRequest(`${entry.id} needs ${entry.style.what}: add a text part to the user message`, 'messages', 'missing_prompt');

  const n = optNumber(b, 'n', 1, ctx.maxN, true) ?? 1;
  const temperature = optNumber(b, 'temperature', 0, 2);
  const topP = optNumber(b, 'top_p', 0, 1);
  const seed = optNumber(b, 'seed', -(2 ** 53), 2 ** 53, true);
  const maxTokens = optNumber(b, 'max_completion_tokens', 1, 1e6, true) ?? optNumber(b, 'max_tokens', 1, 1e6, true);
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') throw badRequest('stream must be a boolean', 'stream');
  const stream = b.stream === true;
  const so = b.stream_options;
  if (so !== undefined && so !== null && !isObj(so)) throw badRequest('stream_options must be an object', 'stream_options');
  const includeUsage = stream && isObj(so) && so.include_usage === true;

  // temperature 0 asks for the greedy answer (OpenAI's meaning), whatever search the checkpoint's
  // generation config sets; n answers the beams cannot give are sampled, one row each
  let numBeams = temperature === 0 ? 1 : (gen?.num_beams ?? 1);
  let doSample: boolean;
  if (temperature !== undefined) doSample = temperature > 0;
  else if (topP !== undefined && topP < 1) doSample = true;
  else doSample = gen?.do_sample ?? false;
  if (n > 1 && !doSample && numBeams < n) {
    if (temperature === 0) throw badRequest(`n is ${n}, but temperature 0 asks for the one greedy answer; give a temperature above 0 to sample ${n} answers`, 'n');
    doSample = true; // n different answers: sample them
    numBeams = 1;
  }
  if (doSample && numBeams < n) numBeams = 1; // (beam sampling returns at most num_beams sequences)
  if (doSample && topP === 0) throw badRequest('top_p must be > 0 when sampling', 'top_p');
  if (b.logprobs !== undefined && b.logprobs !== null && typeof b.logprobs !== 'boolean') throw badRequest('logprobs must be a boolean', 'logprobs');
  const logprobs = b.logprobs === true;
  const topLogprobs = optNumber(b, 'top_logprobs', 0, MAX_TOP_LOGPROBS, true);
  if (topLogprobs !== undefined && topLogprobs > 0 && !logprobs) throw badRequest('top_logprobs needs logprobs: true', 'top_logprobs');
  if (logprobs && numBeams > 1) throw badRequest(`logprobs are given for greedy decoding and sampling; ${entry.id} decodes with beam search (num_beams ${numBeams}) by its generation config: add temperature 0 for its greedy answer`, 'logprobs', 'unsupported_parameter');
  let stop: string[];
  try {
    stop = stopList(b.stop);
  } catch (e) {
    throw badRequest((e as Error).message, 'stop');
  }

  if (prompt !== null) checkTextChars(ctx, prompt, 'messages');
  let facts;
  try {
    facts = promptFacts(entry, prompt);
  } catch (e) {
    throw badRequest(`cannot tokenize the prompt: ${(e as Error).message}`, 'messages');
  }
  if (entry.encoderTextLength !== undefined && facts.encoderTokens > entry.encoderTextLength) {
    throw badRequest(
      `This model's maximum context length is ${entry.encoderTextLength} tokens for ${entry.style?.what ?? 'the text'}. However, your messages resulted in ${facts.encoderTokens} tokens.`,
      'messages',
      'context_length_exceeded',
    );
  }
  let maxNew: number;
  if (gen?.max_new_tokens !== undefined) maxNew = gen.max_new_tokens;
  else if (gen?.max_length !== undefined && gen.source?.max_length !== 'default') maxNew = Math.max(1, gen.max_length - facts.positions);
  else maxNew = 20;
  const ctxLen = entry.contextLength;
  if (ctxLen !== undefined) {
    if (facts.positions >= ctxLen || (maxTokens !== undefined && facts.positions + maxTokens > ctxLen)) {
      throw badRequest(
        `This model's maximum context length is ${ctxLen} tokens. However, you requested ${facts.positions + (maxTokens ?? 1)} tokens (${facts.positions} in the messages, image included, ${maxTokens ?? 1} in the completion). Please reduce the length of the messages or completion.`,
        maxTokens !== undefined && facts.positions < ctxLen ? 'max_tokens' : 'messages',
        'context_length_exceeded',
      );
    }
    maxNew = Math.min(maxNew, ctxLen - facts.positions);
  }
  if (maxTokens !== undefined) maxNew = maxTokens;

  const settings: GenSettings = { maxNewTokens: maxNew, doSample, n };
  if (numBeams !== (gen?.num_beams ?? 1)) settings.numBeams = numBeams;
  if (stop.length) settings.stop = stop;
  if (logprobs) settings.topLogprobs = topLogprobs ?? 0;
  if (doSample) {
    if (temperature !== undefined) settings.temperature = temperature;
    if (topP !== undefined) settings.topP = topP;
  }
  const base = seed ?? randomBytes(4).readUInt32LE(0);
  const seeds = doSample ? Array.from({ length: n }, (_, k) => rowSeed(base, k)) : [];
  const image = await resolveImageUrl(images[0].url, images[0].param, ctx.images);
  // beam sampling draws from one stream per batch: such requests are never batched together
  const alone = doSample && numBeams > 1 ? `|${randomUUID()}` : '';
  const key = `generate|${maxNew}|${doSample}|${numBeams}|${settings.temperature}|${settings.topP}|${n}|${facts.shape}|${JSON.stringify(stop)}|${settings.topLogprobs}${alone}`;
  return { entry, image, prompt, settings, seeds, stream, includeUsage, promptTokens: facts.positions + facts.encoderTokens, key };
}

export function finishReason(choice: { tokenIds: number[]; stop?: string }, plan: ChatPlan): 'stop' | 'length' {
  const { tokenIds } = choice;
  if (choice.stop !== undefined) return 'stop';
  const eos = plan.entry.manifest.text.eos_token_id;
  if (tokenIds.length > 0 && eos.includes(tokenIds[tokenIds.length - 1])) return 'stop';
  return tokenIds.length >= plan.settings.maxNewTokens ? 'length' : 'stop';
}

/** OpenAI's choice.logprobs: null unless the request asked for them. */
export function choiceLogprobs(c: GenValue['choices'][number]): unknown {
  if (!c.logprobs) return null;
  const one = (e: { token: string; bytes: number[]; logprob: number }) => ({ token: e.token, logprob: e.logprob, bytes: e.bytes });
  return { content: c.logprobs.map((e) => ({ ...one(e), top_logprobs: e.top.map(one) })), refusal: null };
}

export function chatId(): string {
  return `chatcmpl-${randomUUID().replace(/-/g, '')}`;
}

export function fingerprint(e: ModelEntry): string {
  return `fp_${e.manifest.source.checkpoint.fingerprint.replace(/^[a-z0-9]+:/, '').slice(0, 12)}`;
}

export function chatResponse(plan: ChatPlan, v: GenValue, id: string, created: number): unknown {
  const completion = v.choices.reduce((a, c) => a + c.tokenIds.length, 0);
  return {
    id,
    object: 'chat.completion',
    created,
    model: plan.entry.id,
    system_fingerprint: fingerprint(plan.entry),
    choices: v.choices.map((c, index) => ({
      index,
      message: { role: 'assistant', content: c.text, refusal: null },
      logprobs: choiceLogprobs(c),
      finish_reason: finishReason(c, plan),
    })),
    usage: { prompt_tokens: plan.promptTokens, completion_tokens: completion, total_tokens: plan.promptTokens + completion },
  };
}

export function chunk(plan: ChatPlan, id: string, created: number, choices: unknown[], usage?: unknown): unknown {
  const c: Record<string, unknown> = { id, object: 'chat.completion.chunk', created, model: plan.entry.id, system_fingerprint: fingerprint(plan.entry), choices };
  if (plan.includeUsage) c.usage = usage ?? null;
  return c;
}

// ---- ITM ---------------------------------------------------------------------------------------

export interface ItmPlan {
  entry: ModelEntry;
  image: ImageBytes;
  texts: string[];
  tokens: number;
}

function checkTexts(ctx: Ctx, entry: ModelEntry, texts: string[], param: string): number {
  let total = 0;
  texts.forEach((t, i) => checkTextChars(ctx, t, `${param}[${i}]`));
  texts.forEach((t, i) => {
    const n = entry.tokenizer.encode(t).length;
    total += n;
    if (entry.encoderTextLength !== undefined && n > entry.encoderTextLength) {
      throw badRequest(`${param}[${i}] is ${n} tokens; this model's maximum context length is ${entry.encoderTextLength} tokens`, `${param}[${i}]`, 'context_length_exceeded');
    }
  });
  return total;
}

export async function parseItm(ctx: Ctx, raw: unknown): Promise<ItmPlan> {
  const b = body(raw);
  const entry = pickModel(ctx, b, 'itm_or_itc');
  let texts: unknown = b.texts ?? (b.text !== undefined ? [b.text] : undefined);
  if (typeof texts === 'string') texts = [texts];
  if (!Array.isArray(texts) || texts.length === 0) throw badRequest('texts must be a non-empty array of strings', 'texts');
  if (texts.length > ctx.maxInputs) throw badRequest(`at most ${ctx.maxInputs} texts per request, found ${texts.length}`, 'texts');
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw badRequest(`texts[${i}] must be a string`, `texts[${i}]`);
  });
  if (b.image === undefined && b.image_url === undefined) throw badRequest('image is required (a data:image/...;base64,... URL)', 'image', 'missing_image');
  const param = b.image !== undefined ? 'image' : 'image_url';
  const image = await resolveImageUrl(imageRef(b.image ?? b.image_url, param), param, ctx.images);
  const tokens = checkTexts(ctx, entry, texts as string[], 'texts');
  return { entry, image, texts: texts as string[], tokens };
}

// ---- embeddings --------------------------------------------------------------------------------

export interface EmbedPlan {
  entry: ModelEntry;
  items: EmbedItem[];
  format: 'float' | 'base64';
  tokens: number;
}

export async function parseEmbeddings(ctx: Ctx, raw: unknown): Promise<EmbedPlan> {
  const b = body(raw);
  const entry = pickModel(ctx, b, 'itc');
  const fmt = b.encoding_format ?? 'float';
  if (fmt !== 'float' && fmt !== 'base64') throw badRequest(`encoding_format must be "float" or "base64", found ${JSON.stringify(fmt)}`, 'encoding_format');
  if (b.dimensions !== undefined && b.dimensions !== null) throw badRequest('dimensions is not supported: BLIP embeddings have the size the model projects to', 'dimensions', 'unsupported_parameter');
  let input = b.input;
  if (typeof input === 'string' || isObj(input)) input = [input];
  if (!Array.isArray(input) || input.length === 0) throw badRequest('input must be a string, an image part, or a non-empty array of them', 'input');
  if (input.length > ctx.maxInputs) throw badRequest(`at most ${ctx.maxInputs} inputs per request, found ${input.length}`, 'input');
  const items: EmbedItem[] = [];
  const texts: string[] = [];
  for (let i = 0; i < input.length; i++) {
    const v = input[i];
    const p = `input[${i}]`;
    if (typeof v === 'string') {
      items.push({ text: v });
      texts.push(v);
    } else if (isObj(v) && v.type === 'text' && typeof v.text === 'string') {
      items.push({ text: v.text });
      texts.push(v.text);
    } else if (isObj(v) && (v.type === 'image_url' || 'image_url' in v || 'image' in v)) {
      items.push({ image: await resolveImageUrl(imageRef('image' in v ? v.image : v.image_url, p), p, ctx.images) });
    } else if (typeof v === 'number' || Array.isArray(v)) {
      throw badRequest(`${p}: token arrays are not supported; send text`, p, 'unsupported_input');
    } else {
      throw badRequest(`${p} must be a string, {"type": "text", "text": ...} or {"type": "image_url", "image_url": {"url": ...}}`, p, 'unsupported_input');
    }
  }
  const tokens = checkTexts(ctx, entry, texts, 'input');
  return { entry, items, format: fmt, tokens };
}

export function embeddingValue(data: Float32Array, format: 'float' | 'base64'): number[] | string {
  if (format === 'float') return Array.from(data);
  const le = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(le).toString('base64');
}
