// Captioning, VQA and instruction following: images (+ a prompt) -> encode.onnx -> the host
// generation loop over decoder.onnx. Inputs are built per generating decoder (the manifest's
// prompt_format, from its kind: a BLIP BERT decoder over BLIP-2 queries is built as BLIP's) as
// transformers' processors and generate() build them:
//   BLIP caption   decoder prompt [DEC] + prompt ids (BlipForConditionalGeneration.generate)
//   BLIP VQA       the question into encode.onnx (right-padded); the decoder starts from [DEC]
//   BLIP-2 / InstructBLIP, decoder-only LLM (OPT, LLaMA)
//                  N <image> placeholders + the tokenizer's ids, left-padded (the pads sit between
//                  the placeholders and the text, as the processor prepends them after padding);
//                  no prompt: placeholders + text_config.bos_token_id. Checkpoints without an image
//                  token (older BLIP-2): the text is fed at prefill behind the visual prefix and the
//                  sequences hold the new tokens alone, as transformers returns them.
//   BLIP-2 / InstructBLIP, T5
//                  the prompt into the T5 encoder (tokenizer padding side), the decoder starts from
//                  decoder_start_token_id
//   InstructBLIP   the instruction also goes to the Q-Former through its own (BERT) tokenizer
import * as ort from 'onnxruntime-node';
import { modelPhrase, type Manifest } from '../../src/artifact/manifest.js';
import { BlipRuntimeError, GenerationConfigError, oneLine } from '../errors.js';
import { checkSettings, generate, MAX_ROWS_PER_PROMPT, MAX_TOP_LOGPROBS, type Prompt } from '../generation/generate.js';
import { generationOptionsFromManifest } from '../generation/config.js';
import { OnnxDecoderStepModel, type DecoderSession } from '../generation/onnx.js';
import type { DeviceRowGather } from '../generation/deviceRows.js';
import { createRandom } from '../generation/random.js';
import { TextStreamer } from '../generation/streamer.js';
import { cutAt, cutAtStop, cutText, findStop, StopFilter, stopList, stopText } from '../generation/stopStrings.js';
import { pyLstrip, pyRstrip, pyStrip } from '../generation/pythonSpace.js';
import type { GenerationOptions, StepInput, StepModel, StepOutput, TokenEvent, TokenLogprob } from '../generation/types.js';
import type { PreprocessConfig } from '../preprocess/config.js';
import type { HfTokenizer } from '../tokenizers/hf.js';
import { blipDecoderPrompt, type TextBatch } from '../tokenizers/prompts.js';
import { declaredImageSize, imageName, inOrder, prepareImages, type ImageInput } from './images.js';
import { checkImageList, checkSignal, describeArgument, found, optionsObject } from './arguments.js';
import { checkVocabulary } from './vocabulary.js';
import { doneWith, encodeInRows, type EncodeBuffers } from './encodeRows.js';

export interface GenerateOptions {
  /** One prompt for every image, or one per image (BLIP: caption prefix; VQA: the question; BLIP-2: the LLM prompt; InstructBLIP: the instruction). */
  prompt?: string | readonly string[] | undefined;
  maxNewTokens?: number | undefined;
  /** Total length limit (prompt included); maxNewTokens takes precedence. */
  maxLength?: number | undefined;
  minNewTokens?: number | undefined;
  minLength?: number | undefined;
  numBeams?: number | undefined;
  lengthPenalty?: number | undefined;
  earlyStopping?: boolean | 'never' | undefined;
  repetitionPenalty?: number | undefined;
  noRepeatNgramSize?: number | undefined;
  doSample?: boolean | undefined;
  topP?: number | undefined;
  topK?: number | undefined;
  temperature?: number | undefined;
  /**
   * Sampling seed. A number seeds every output sequence on its own (sequence j gets a seed derived
   * from (seed, j)), so a sampled text does not depend on the batch size; an array gives the seed of
   * each output sequence (image i, sequence k -> index i * numReturnSequences + k). Beam sampling
   * (numBeams > 1 with doSample) uses one stream per batch, seeded by the batch's first seed.
   * Default 0: every unseeded call samples the same texts (blip serve draws a random seed per
   * request instead); pass a seed of your own for different samples.
   */
  seed?: number | readonly number[] | undefined;
  /** Sequences per image (beam search: at most numBeams; sampling: independent samples). */
  numReturnSequences?: number | undefined;
  /**
   * Stop strings (at most 4): a sequence ends at the token whose text completes one, and its `text`
   * is what came before it (`stop` names the string). Matched in the decoded new tokens before
   * white space is stripped, in text later tokens cannot change (a trailing byte-fallback run waits
   * for the next token; a finished sequence's text is final). Greedy and sampled rows stop there;
   * beam search runs as without them and its sequences are cut.
   */
  stop?: string | readonly string[] | undefined;
  /**
   * Each new token's log-probability under the model (log-softmax of its logits before any logits
   * processor, as transformers' `output_logits` gives them), in the result's `logprobs`. Greedy and
   * sampling (greedy decoding then runs on the host, one decoder call a token); not beam search.
   */
  logprobs?: boolean | undefined;
  /** With logprobs: the most likely tokens of each step to list too (0–20, default 0). */
  topLogprobs?: number | undefined;
  /** Images per encode / generate call (default 8). */
  batchSize?: number | undefined;
  /**
   * Streaming: called as text becomes printable (whole words, as transformers' TextStreamer), with
   * the released text ('' when a token released none) and the token id. `row` is the output
   * sequence (image i, sequence k -> i * numReturnSequences + k). The pieces of a row concatenate to
   * its `text`. Greedy and sampling stream token by token; beam search replays each final sequence
   * when its batch is done (so throwing from onToken cannot stop a beam search's decoding: `signal`
   * can). A promise it returns is not waited for token by token, but the call settles only after it
   * has, and rejects with its reason if it rejects (generation then stops at the next token, as when
   * onToken throws; a beam replay at its next token).
   */
  onToken?: ((row: number, text: string, id: number) => void) | undefined;
  /**
   * Cancels the call: aborted before it, the call rejects at once; aborted while it runs, it stops
   * before its next model run (the next decoding step, greedy or beam search, or the next batch's
   * encode) and rejects with the signal's reason. With a signal, greedy decoding inside the model
   * (CPU) runs four tokens a call, so that it looks every four tokens.
   */
  signal?: AbortSignal | undefined;
}

export interface Timings {
  /** Image decoding, resizing, normalisation and tokenisation. */
  preprocess: number;
  /** encode.onnx. */
  encode: number;
  /** The first decoder.onnx call (the whole prompt). */
  prefill: number;
  /** The remaining decoding steps, with the host's search work. */
  decode: number;
  /** Opening and releasing the graphs within the call (staged loading only). */
  load?: number;
  total: number;
}

export interface GeneratedSequence {
  /** Decoded new tokens, special tokens skipped, surrounding white space stripped (Python's str.strip()). */
  text: string;
  /** The new ids: without the prompt or the decoder start, through the first EOS, without padding. */
  tokenIds: number[];
  /** Beam search: the length-penalised score. */
  score?: number;
  /** The stop string (GenerateOptions.stop) that ended the sequence; `text` stops before it. */
  stop?: string;
  /** With GenerateOptions.logprobs: one entry per token of `tokenIds`. */
  logprobs?: TokenLogprobEntry[];
}

/** A token as logprobs list it: its id, its text decoded alone, its bytes (tokenizer.tokenBytes) and log-probability. */
export interface TokenLogprobInfo {
  id: number;
  token: string;
  bytes: number[];
  logprob: number;
}

export interface TokenLogprobEntry extends TokenLogprobInfo {
  /** The most likely tokens of the step, best first (GenerateOptions.topLogprobs of them). */
  top: TokenLogprobInfo[];
}

export interface GenerateResult extends GeneratedSequence {
  /** All sequences of this image when numReturnSequences > 1 (the first is `text` / `tokenIds`). */
  sequences?: GeneratedSequence[];
  /** Milliseconds spent on the batch this image was in. */
  timingsMs: Timings;
}

/** What the generating task needs of a loaded model. */
export interface GenerateContext {
  manifest: Manifest;
  preprocess: PreprocessConfig;
  tokenizer: HfTokenizer;
  qformerTokenizer?: HfTokenizer;
  encode: DecoderSession;
  decoder: DecoderSession;
  /** Set when the decoder keeps its KV cache on the WebGPU device: beam search reorders it there. */
  deviceRows?: DeviceRowGather;
  /** Images per encode.onnx run within a batch (default: the whole batch; 1 on the CPU, see encodeRows.ts). */
  encodeRows?: number;
  /** Where a batch encoded in rows leaves its batch-major buffers for the next batch (encodeRows.ts). */
  encodeBuffers?: EncodeBuffers;
  /**
   * Staged sessions (LoadOptions.staged, runtime/stagedSession.ts), per batch: `encode` opens
   * encode.onnx, `decode` releases it and opens decoder.onnx for at most `steps` decoder runs of
   * `beams` beams (both timed as `load`), `done` releases decoder.onnx.
   */
  stages?: { encode(): Promise<void>; decode(work: { steps: number; beams: number }): Promise<void>; done(): Promise<void> };
}

/** How this artifact takes text. */
export interface PromptStyle {
  kind: 'blip-caption' | 'blip-vqa' | 'llm-prefix' | 'llm-legacy' | 't5';
  /** The prompt is required (VQA question, InstructBLIP instruction). */
  required: boolean;
  /** What the prompt is, for messages and help. */
  what: string;
  /** The graph reads no text input (manifest text.takes_prompt false): a prompt is refused. */
  none?: true;
}

export function promptStyle(m: Manifest): PromptStyle {
  const style = promptStyleOf(m);
  return m.text.takes_prompt === false ? { ...style, required: false, none: true } : style;
}

/** Why a prompt is refused by a model whose graph reads no text. */
export function noPromptMessage(m: Manifest): string {
  return `model "${m.model}" takes no prompt: its graph reads no text input, so it generates from the image alone; leave the prompt out (or compile a graph that connects one, e.g. text: prompt)`;
}

/**
 * The prompt layout is the generating decoder's (the manifest's prompt_format, from its kind), not
 * the family's: a BLIP caption decoder over BLIP-2 queries takes BLIP's [DEC] prompt, though it
 * cross-attends as T5 does.
 */
function promptStyleOf(m: Manifest): PromptStyle {
  const instruct = m.family === 'instructblip';
  if (m.text.prompt_format === 'blip') {
    return m.text.text_input === 'encoder' ? { kind: 'blip-vqa', required: true, what: 'the question' } : { kind: 'blip-caption', required: instruct, what: 'a caption prefix' };
  }
  const what = instruct ? 'the instruction' : 'the language-model prompt';
  if (m.decoder?.cross_attention) return { kind: 't5', required: instruct, what };
  return { kind: m.text.image_token_id !== undefined ? 'llm-prefix' : 'llm-legacy', required: instruct, what };
}

const ones = (n: number): number[] => new Array<number>(n).fill(1);

function i64(rows: number[][]): ort.Tensor {
  const s = rows[0]?.length ?? 0;
  const d = new BigInt64Array(rows.length * s);
  rows.forEach((r, i) => r.forEach((v, j) => (d[i * s + j] = BigInt(v))));
  return new ort.Tensor('int64', d, [rows.length, s]);
}

/** The tokenizer's batch, padded on `side` (with the model's pad id when the tokenizer has none). */
function textBatch(tok: HfTokenizer, texts: string[], side: 'left' | 'right' | undefined, fallbackPad: number): TextBatch {
  return tok.encodeBatch(texts, { paddingSide: side ?? tok.paddingSide, padTokenId: tok.padTokenId ?? fallbackPad });
}

/**
 * LLM text rows: the prompts, or text_config.bos_token_id alone when there are none, or when the
 * graph gives the language model no text (manifest text.llm_prompt false: the prompt is the Q-Former's instruction only).
 */
function llmText(ctx: GenerateContext, prompts: string[] | null, batch: number, side: 'left' | 'right' | undefined): TextBatch {
  if (ctx.manifest.text.llm_prompt === false) prompts = null;
  const t = ctx.manifest.text;
  if (prompts) return textBatch(ctx.tokenizer, prompts, side, t.pad_token_id);
  const bos = t.bos_token_id;
  if (bos === undefined) throw new GenerationConfigError('this model needs a prompt: its manifest has no bos_token_id to start from');
  return { inputIds: Array.from({ length: batch }, () => [bos]), attentionMask: Array.from({ length: batch }, () => [1]) };
}

/**
 * Positions the visual prefix of a decoder-only language model takes (manifest text.prefix_length:
 * a ViT's outputs are more than num_query_tokens); artifacts compiled before it was recorded: num_query_tokens.
 */
export function prefixPositions(m: Manifest): number {
  return m.text.prefix_length ?? m.text.num_query_tokens ?? 0;
}

export interface BuiltInputs {
  /** Text inputs of encode.onnx (besides pixel_values). */
  encodeFeeds: Record<string, ort.Tensor>;
  prompt: Prompt;
  /** The visual prefix: placeholders in the prompt or positions in front of it, `length` of them. */
  prefix?: { placeholders: boolean; length: number };
  prefillText?: { inputIds: number[][]; attentionMask: number[][] };
}

/**
 * The model inputs for a batch of prompts (null: no prompt), as the family's processor and
 * generate() build them; `first`: the call's index of the batch's first prompt, for messages.
 */
export function buildInputs(ctx: GenerateContext, prompts: string[] | null, batch: number, first = 0): BuiltInputs {
  const m = ctx.manifest;
  const style = promptStyle(m);
  if (style.required && !prompts) throw new GenerationConfigError(`${modelPhrase(m).replace(/^an? /, 'this ')} needs ${style.what} (a prompt)`);
  const blank = style.required ? (prompts?.findIndex((p) => p.trim() === '') ?? -1) : -1;
  if (blank >= 0) throw new GenerationConfigError(`prompt ${first + blank} is empty: ${modelPhrase(m).replace(/^an? /, 'this ')} needs ${style.what}`);
  const encodeFeeds: Record<string, ort.Tensor> = {};
  if (m.family === 'instructblip') {
    if (!ctx.qformerTokenizer) throw new BlipRuntimeError('BLIP5020', 'this InstructBLIP model has no qformer_tokenizer in its manifest; recompile it');
    const q = textBatch(ctx.qformerTokenizer, prompts!, undefined, 0);
    checkVocabulary(ctx.qformerTokenizer, q.inputIds, q.attentionMask, prompts!, m.text.vocab_sizes?.qformer_text, 'the Q-Former');
    encodeFeeds.qformer_input_ids = i64(q.inputIds);
    encodeFeeds.qformer_attention_mask = i64(q.attentionMask);
  }
  const startRows = (id: number | undefined, what: string): Prompt => {
    if (id === undefined) throw new BlipRuntimeError('BLIP5044', `the manifest has no ${what}; recompile the model`);
    return { inputIds: Array.from({ length: batch }, () => [id]), attentionMask: Array.from({ length: batch }, () => [1]) };
  };
  switch (style.kind) {
    case 'blip-caption': {
      const start = m.text.decoder_start_token_id ?? m.text.bos_token_id;
      if (start === undefined) throw new BlipRuntimeError('BLIP5044', 'the manifest has no decoder_start_token_id; recompile the model');
      const p = blipDecoderPrompt(ctx.tokenizer, prompts, batch, start);
      return { encodeFeeds, prompt: { inputIds: p.inputIds, attentionMask: p.attentionMask } };
    }
    case 'blip-vqa': {
      const q = textBatch(ctx.tokenizer, prompts!, 'right', m.text.pad_token_id);
      checkVocabulary(ctx.tokenizer, q.inputIds, q.attentionMask, prompts!, m.text.vocab_sizes?.text, 'the question encoder');
      encodeFeeds.input_ids = i64(q.inputIds);
      encodeFeeds.attention_mask = i64(q.attentionMask);
      return { encodeFeeds, prompt: startRows(m.text.decoder_start_token_id ?? m.text.bos_token_id, 'decoder_start_token_id') };
    }
    case 't5': {
      // the encoder prompt without its N placeholders (encode.onnx puts the query outputs there)
      const e = llmText(ctx, prompts, batch, undefined);
      encodeFeeds.input_ids = i64(e.inputIds);
      encodeFeeds.attention_mask = i64(e.attentionMask);
      return { encodeFeeds, prompt: startRows(m.text.decoder_start_token_id, 'decoder_start_token_id') };
    }
    case 'llm-prefix': {
      // one placeholder per prefix position: the decoder replaces exactly these
      const n = prefixPositions(m);
      const e = llmText(ctx, prompts, batch, 'left');
      const img = new Array<number>(n).fill(m.text.image_token_id!);
      return {
        encodeFeeds,
        prompt: { inputIds: e.inputIds.map((r) => [...img, ...r]), attentionMask: e.attentionMask.map((r) => [...ones(n), ...r]) },
        prefix: { placeholders: true, length: n },
      };
    }
    case 'llm-legacy': {
      const e = llmText(ctx, prompts, batch, 'left');
      return { encodeFeeds, prompt: { inputIds: Array.from({ length: batch }, () => []) }, prefix: { placeholders: false, length: prefixPositions(m) }, prefillText: e };
    }
  }
}

/** transformers' model-agnostic max_length: 20 new tokens when nothing sets a length. */
const DEFAULT_MAX_LENGTH = 20;

/** Where a manifest's generation default came from, for a message (Generation.source's values). */
const DEFAULT_SOURCES: Record<string, string> = { graph: "the graph's generation block", 'generation_config.json': "the checkpoint's generation_config.json", default: "transformers' default" };

/**
 * Refuse, before any work, text longer than the model's learned positions (the manifest's
 * text.max_positions): onnxruntime would fail with a shape error far from the cause. `maxLength`:
 * given when the new tokens were asked for that way, for the message; `byDefault`: the source of
 * the manifest's default (Generation.source) when the caller set neither.
 */
function checkLengths(m: Manifest, built: BuiltInputs, maxNewTokens: number | undefined, maxLength?: number, byDefault?: string, prompted = true): void {
  const lim = m.text.max_positions;
  if (!lim) return;
  const width = (t: ort.Tensor | undefined) => (t ? Number(t.dims[1]) : 0);
  const q = width(built.encodeFeeds.qformer_input_ids);
  if (lim.qformer_text !== undefined && q > lim.qformer_text) {
    throw new BlipRuntimeError('BLIP5032', `the instruction is ${q} tokens for the Q-Former, which has ${lim.qformer_text} positions; shorten it`);
  }
  const e = width(built.encodeFeeds.input_ids);
  if (lim.text !== undefined && e > lim.text) throw new BlipRuntimeError('BLIP5032', `the question is ${e} tokens, the text encoder has ${lim.text} positions; shorten it`);
  if (lim.decoder !== undefined) {
    const prompt = (built.prompt.inputIds[0]?.length ?? 0) + (built.prefillText ? (built.prefillText.inputIds[0]?.length ?? 0) + prefixPositions(m) : 0);
    // the last new token is never fed back, so it takes no position (as in transformers: one more fails there)
    const total = prompt + Math.max(0, (maxNewTokens ?? 0) - 1);
    if (prompted && prompt > lim.decoder) {
      // no length setting makes room for a prompt past the positions: only shortening it does
      throw new BlipRuntimeError('BLIP5032', `the prompt takes ${prompt} positions; the decoder has ${lim.decoder}: shorten the prompt`);
    }
    if (prompt > lim.decoder || total > lim.decoder) {
      // with no prompt given, what takes the positions is the model's own start ([DEC], BOS): nothing to shorten
      const what = prompted ? 'the prompt takes' : `with no prompt, the ${built.prefix?.length ? 'image prefix and start tokens take' : 'start tokens take'}`;
      const fix = (setting: string) => (prompted ? `shorten the prompt or ${setting}` : setting);
      throw new BlipRuntimeError(
        'BLIP5032',
        byDefault !== undefined && maxNewTokens
          ? // the caller set no length: "lower maxNewTokens" would name a setting they never gave
            `${what} ${prompt} position${prompt === 1 ? '' : 's'} and the model's default ${maxLength !== undefined ? `max_length ${maxLength}` : `max_new_tokens ${maxNewTokens}`} (from ${DEFAULT_SOURCES[byDefault] ?? byDefault}) asks for up to ${maxNewTokens} new tokens; the decoder has ${lim.decoder} positions: ${fix(maxLength !== undefined ? 'set a lower maxLength or maxNewTokens' : 'set a lower maxNewTokens')}`
          : `${what} ${prompt} position${prompt === 1 ? '' : 's'}${maxNewTokens ? ` and up to ${maxNewTokens} new tokens were asked for${maxLength !== undefined ? ` (maxLength ${maxLength})` : ''}` : ''}; the decoder has ${lim.decoder} positions: ${fix(`lower ${maxLength !== undefined ? 'maxLength' : 'maxNewTokens'}`)}`,
      );
    }
  }
}

/**
 * The new tokens the loop decodes at most for a batch built as `built` (maxLength counts the prompt
 * the loop is given, as in transformers), after refusing a batch the loop would refuse: text the
 * model has no positions for (BLIP5032, checkLengths; then the loop's own length resolution).
 */
function batchNewTokens(m: Manifest, base: GenerationOptions, opts: GenerateOptions, built: BuiltInputs, prompted: boolean): number {
  const loopPrompt = built.prompt.inputIds[0]?.length ?? 0;
  // no length anywhere: transformers' default max_length, 20 new tokens with the whole sequence
  // capped at the model's positions (as the loop resolves it); a legacy prefix is not counted there
  const agnostic = base.maxNewTokens === undefined && base.maxLength === undefined;
  const capped = Math.min(DEFAULT_MAX_LENGTH + loopPrompt, base.maxPositionEmbeddings ?? Infinity);
  const newTokens = base.maxNewTokens ?? Math.max(0, (base.maxLength ?? capped) - loopPrompt);
  const byLength = base.maxNewTokens === undefined && base.maxLength !== undefined;
  // the caller gave neither: the manifest's default (its source named, as no flag of the caller's set it)
  const byDefault = opts.maxNewTokens === undefined && opts.maxLength === undefined ? (agnostic ? 'default' : m.generation?.source[byLength ? 'max_length' : 'max_new_tokens']) : undefined;
  checkLengths(m, built, newTokens, byLength ? base.maxLength : agnostic && newTokens ? DEFAULT_MAX_LENGTH : undefined, byDefault, prompted);
  // (a prompt filling the capped default's positions, a maxLength it reaches, or settings the loop
  // refuses whatever the prompt: numReturnSequences 2 with greedy decoding, more than numBeams)
  checkSettings(base, loopPrompt);
  return newTokens;
}

/** A batch's text inputs, built before the first model run. */
interface BatchText {
  built: BuiltInputs;
  newTokens: number;
  /** Time spent building it (the batch's share of the preprocessing). */
  ms: number;
}

/**
 * Every batch's text inputs, built and checked before any image is read or model run: a prompt
 * that is empty, too long for the model or holds a token its encoder has no embedding for fails
 * the call at once, wherever it is in the list, instead of when its batch comes. With several
 * prompts, a length error names the prompt (`prompt[i]`, and its image where that has a name) and
 * gives that prompt's own length, not its batch's padded width (the first too long in the batch).
 * The token ids are kept for their batch (a few bytes a token), not tokenized twice.
 */
function buildBatches(ctx: GenerateContext, images: ImageInput[], prompts: string[] | null, several: boolean, bs: number, base: GenerationOptions, opts: GenerateOptions): BatchText[] {
  const m = ctx.manifest;
  // settings refused whatever the prompt (beams against returned sequences, penalties, sampling),
  // first and alone: a prompt's re-check below would take them for that prompt's fault
  checkSettings({ ...base, maxNewTokens: 1, maxLength: undefined }, 0);
  const batches: BatchText[] = [];
  for (let start = 0; start < images.length; start += bs) {
    const t = performance.now();
    const B = Math.min(bs, images.length - start);
    const built = buildInputs(ctx, prompts && prompts.slice(start, start + B), B, start);
    let newTokens: number;
    try {
      newTokens = batchNewTokens(m, base, opts, built, prompts !== null);
    } catch (e) {
      if (!several || !prompts) throw e;
      // the batch's width is its longest prompt's: find the first prompt refused alone, and say which
      for (let i = start; i < start + B; i++) {
        try {
          batchNewTokens(m, base, opts, buildInputs(ctx, [prompts[i]!], 1, i), true);
        } catch (alone) {
          if (alone instanceof Error) {
            const name = imageName(images[i]!, i);
            alone.message = `prompt[${i}]${name.startsWith('#') ? '' : ` (image ${name})`}: ${alone.message}`;
          }
          throw alone;
        }
      }
      throw e;
    }
    batches.push({ built, newTokens, ms: performance.now() - t });
  }
  return batches;
}

/** A 32-bit mix of (seed, row): the seed of output sequence `row` when one seed is given. */
export function rowSeed(seed: number, row: number): number {
  let h = (Math.floor(seed) >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = (h + Math.imul(row + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Times decoder calls: the prefill apart from the steps. */
class TimedStepModel<S> implements StepModel<S> {
  prefillMs = 0;
  readonly greedy?: StepModel<S>['greedy'];
  constructor(private readonly inner: StepModel<S>) {
    if (inner.greedy) this.greedy = inner.greedy.bind(inner);
  }
  async step(input: StepInput, state: S | undefined): Promise<StepOutput<S>> {
    const t = performance.now();
    const out = await this.inner.step(input, state);
    if (input.prefill) this.prefillMs += performance.now() - t;
    return out;
  }
  reorder(state: S, rows: number[]): S | Promise<S> {
    return this.inner.reorder(state, rows);
  }
  dispose(state: S): void {
    this.inner.dispose?.(state);
  }
}

/**
 * The options as the library takes them, each named as GenerateOptions names it (the CLI and
 * `blip serve` check their own flags and fields first, and rename what reaches them from here:
 * cliOptionNames in src/cli/commands/run.ts, toApiError in runtime/server/errors.ts). Checked
 * before anything else, with no images too.
 */
function checkOptions(o: GenerateOptions): void {
  const bad = (name: string, want: string, v: unknown) => new GenerationConfigError(`${name} must be ${want}, found ${found(v)}`);
  const int = (name: keyof GenerateOptions, min: number, max = Infinity) => {
    const v = o[name];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= min)) throw bad(name, `an integer >= ${min}`, v);
    if (typeof v === 'number' && v > max) throw new GenerationConfigError(`${name} is ${v}, more than the ${max} rows per prompt this runtime takes`);
  };
  int('batchSize', 1);
  int('numReturnSequences', 1, MAX_ROWS_PER_PROMPT);
  // (before the prompt-length check, which would take Infinity for a length)
  int('maxNewTokens', 1);
  int('maxLength', 1);
  int('minNewTokens', 0);
  int('minLength', 0);
  int('numBeams', 1, MAX_ROWS_PER_PROMPT);
  int('noRepeatNgramSize', 0);
  int('topK', 0);
  const num = (name: 'lengthPenalty' | 'repetitionPenalty' | 'temperature' | 'topP', ok: (v: number) => boolean, want: string) => {
    const v = o[name];
    if (v !== undefined && !(typeof v === 'number' && ok(v))) throw bad(name, want, v);
  };
  num('lengthPenalty', Number.isFinite, 'a finite number');
  num('repetitionPenalty', (v) => v > 0, 'a number > 0');
  num('temperature', (v) => v > 0, 'a number > 0');
  num('topP', (v) => v >= 0 && v <= 1, 'a number from 0 to 1');
  if (o.earlyStopping !== undefined && o.earlyStopping !== true && o.earlyStopping !== false && o.earlyStopping !== 'never') throw bad('earlyStopping', 'true, false or "never"', o.earlyStopping);
  for (const name of ['doSample', 'logprobs'] as const) if (o[name] !== undefined && typeof o[name] !== 'boolean') throw bad(name, 'true or false', o[name]);
  if (o.topLogprobs !== undefined && !(typeof o.topLogprobs === 'number' && Number.isInteger(o.topLogprobs) && o.topLogprobs >= 0 && o.topLogprobs <= MAX_TOP_LOGPROBS)) {
    throw bad('topLogprobs', `an integer from 0 to ${MAX_TOP_LOGPROBS}`, o.topLogprobs);
  }
  if (o.topLogprobs !== undefined && !o.logprobs) throw new GenerationConfigError('topLogprobs needs logprobs: true');
  // a seed is an integer: 1.5 would draw what 1 draws
  if (Array.isArray(o.seed)) {
    const i = o.seed.findIndex((s) => !Number.isSafeInteger(s));
    if (i >= 0) throw bad(`seed[${i}]`, 'an integer (below 2^53 in size)', o.seed[i]);
  } else if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) throw bad('seed', 'an integer (below 2^53 in size)', o.seed);
  if (o.onToken !== undefined && typeof o.onToken !== 'function') throw bad('onToken', 'a function', o.onToken);
  checkSignal(o.signal);
  if (o.prompt !== undefined) {
    if (Array.isArray(o.prompt)) {
      const i = o.prompt.findIndex((p) => typeof p !== 'string');
      if (i >= 0) throw new GenerationConfigError(`prompt[${i}] must be a string, found ${describeArgument(o.prompt[i])}`);
    } else if (typeof o.prompt !== 'string') throw new GenerationConfigError(`prompt must be a string or an array of strings (one per image), found ${describeArgument(o.prompt)}`);
  }
  stopList(o.stop);
}

/**
 * Sampling settings given where the call does not sample (neither `doSample: true` nor a
 * generation config that samples by default) would be ignored: refused, as `blip run` refuses them
 * without --sample.
 */
function checkSampling(o: GenerateOptions, sampling: boolean): void {
  if (sampling) return;
  const given = (['temperature', 'topP', 'topK', 'seed'] as const).find((k) => o[k] !== undefined);
  if (given) throw new GenerationConfigError(`${given} applies when sampling: set doSample: true${o.doSample === false ? ' (doSample is false)' : ''}`);
}

/** Array.isArray for the options' `readonly` lists (which it does not narrow). */
const isList = <T>(v: T | readonly T[] | undefined): v is readonly T[] => Array.isArray(v);

/** Every key GenerateOptions has (checked at run time for JavaScript callers). */
export const GENERATE_OPTIONS: ReadonlyArray<keyof GenerateOptions> = [
  'prompt', 'maxNewTokens', 'maxLength', 'minNewTokens', 'minLength', 'numBeams', 'lengthPenalty', 'earlyStopping', 'repetitionPenalty',
  'noRepeatNgramSize', 'doSample', 'topP', 'topK', 'temperature', 'seed', 'numReturnSequences', 'stop', 'logprobs', 'topLogprobs', 'batchSize', 'onToken', 'signal',
];

/** Run generation for `images` (see GenerateOptions); one result per image, in order. */
export async function generateForImages(ctx: GenerateContext, images: ImageInput[], opts: GenerateOptions | null = {}): Promise<GenerateResult[]> {
  checkImageList(images);
  // JavaScript callers have no type checker: a misspelt option would otherwise be ignored
  opts = optionsObject<GenerateOptions>(opts, GENERATE_OPTIONS);
  // prompt: null is no prompt, as null options are no options (JavaScript callers pass it so)
  if ((opts as { prompt?: unknown }).prompt === null) opts = { ...opts, prompt: undefined };
  checkOptions(opts);
  // (Node's convention: a signal aborted before the call rejects it at once, with its reason)
  opts.signal?.throwIfAborted();
  const m = ctx.manifest;
  if (!m.decoder) throw new BlipRuntimeError('BLIP5044', 'this model has no decoder facts in its manifest; recompile it');
  checkSampling(opts, opts.doSample ?? m.generation?.do_sample ?? false);
  const N = images.length;
  if (N === 0) return [];
  let prompts: string[] | null;
  if (isList(opts.prompt)) {
    if (opts.prompt.length !== N) throw new GenerationConfigError(`${opts.prompt.length} prompts for ${N} images; give one prompt, or one per image`);
    prompts = [...opts.prompt];
  } else {
    const p = opts.prompt ?? m.generation?.prompt;
    prompts = p === undefined ? null : new Array<string>(N).fill(p);
  }
  const style = promptStyle(m);
  if (style.none && opts.prompt !== undefined) throw new GenerationConfigError(noPromptMessage(m));
  if (style.required && !prompts) throw new GenerationConfigError(`${modelPhrase(m).replace(/^an? /, 'this ')} needs ${style.what} (a prompt)`);
  const nRet = opts.numReturnSequences ?? 1;
  const stops = stopList(opts.stop);
  if (Array.isArray(opts.seed) && opts.seed.length !== N * nRet) {
    throw new GenerationConfigError(`${opts.seed.length} seeds for ${N * nRet} output sequences (${N} images x ${nRet})`);
  }
  const overrides: GenerationOptions = {
    maxNewTokens: opts.maxNewTokens,
    maxLength: opts.maxLength,
    minNewTokens: opts.minNewTokens,
    minLength: opts.minLength,
    numBeams: opts.numBeams,
    lengthPenalty: opts.lengthPenalty,
    earlyStopping: opts.earlyStopping,
    repetitionPenalty: opts.repetitionPenalty,
    noRepeatNgramSize: opts.noRepeatNgramSize,
    doSample: opts.doSample,
    topP: opts.topP,
    topK: opts.topK,
    temperature: opts.temperature,
    numReturnSequences: opts.numReturnSequences,
  };
  const base = generationOptionsFromManifest(m.generation, m.text, overrides);
  base.vocabSize = m.decoder.vocab_size;
  // a length the caller did not set is the manifest's: the loop's refusal of it names where it came from
  const lengthSource = m.generation?.source.max_length;
  if (base.maxLength !== undefined && opts.maxLength === undefined && lengthSource !== undefined) base.maxLengthFrom = DEFAULT_SOURCES[lengthSource] ?? lengthSource;
  // before any image is read: the loop would refuse them only after the first batch's encode
  if (opts.logprobs) {
    const top = opts.topLogprobs ?? 0;
    if (!Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS) throw new GenerationConfigError(`topLogprobs must be an integer from 0 to ${MAX_TOP_LOGPROBS}, found ${String(opts.topLogprobs)}`);
    if ((base.numBeams ?? 1) > 1) throw new GenerationConfigError(`logprobs are given for greedy decoding and sampling, not beam search: this model decodes with ${base.numBeams} beams${opts.numBeams === undefined ? ' by default; set numBeams: 1' : ''}`);
  }
  const callbacks = opts.onToken ? tokenCallbacks(opts.onToken) : undefined;
  const onToken = callbacks?.call;
  const eos = new Set(base.eosTokenId === null || base.eosTokenId === undefined ? [] : Array.isArray(base.eosTokenId) ? base.eosTokenId : [base.eosTokenId]);
  const bs = opts.batchSize ?? 8;
  // every prompt built and checked, then every image read, before the first batch runs: one that
  // is refused fails the call before any encode or decode is spent on the others (docs/api.md)
  const texts: Array<BatchText | undefined> = buildBatches(ctx, images, prompts, isList(opts.prompt) && N > 1, bs, base, opts);
  const prepared = await prepareImages(images, inOrder(N, bs), ctx.preprocess, { modelSize: declaredImageSize(ctx.manifest, 'encode') });
  const results: GenerateResult[] = [];
  try {
    for (let start = 0; start < N; start += bs) {
      const B = Math.min(bs, N - start);
      opts.signal?.throwIfAborted(); // (before the batch opens or runs anything)
      const t0 = performance.now();
      const { tensor: pixel_values, readMs } = await prepared.pixels(start / bs);
      const { built, newTokens, ms: buildMs } = texts[start / bs]!;
      texts[start / bs] = undefined; // (its token ids are read by nothing after this batch)
      let openEncode = 0;
      if (ctx.stages) {
        const t = performance.now();
        await ctx.stages.encode();
        openEncode = performance.now() - t;
      }
      const t1 = performance.now();
      let encoded: Record<string, ort.Tensor>;
      try {
        encoded = await encodeInRows(ctx.encode, { pixel_values, ...built.encodeFeeds }, B, ctx.encodeRows ?? B, ctx.encodeBuffers);
      } catch (e) {
        throw new BlipRuntimeError('BLIP5043', `encode.onnx failed (${oneLine(e)})`);
      }
      const t2 = performance.now();
      let openDecoder = 0;
      if (ctx.stages) {
        await ctx.stages.decode({ steps: newTokens, beams: base.numBeams ?? 1 });
        openDecoder = performance.now() - t2;
      }
      const model = new TimedStepModel(
        new OnnxDecoderStepModel({ session: ctx.decoder, decoder: m.decoder, encoded, prefix: built.prefix, prefillText: built.prefillText, deviceRows: ctx.deviceRows }),
      );
      const g: GenerationOptions = { ...base };
      const rowsOut = B * nRet;
      const firstRow = start * nRet;
      const sampling = g.doSample === true;
      const seeds = Array.from({ length: rowsOut }, (_, r) => (isList(opts.seed) ? opts.seed[firstRow + r] : rowSeed(opts.seed ?? 0, firstRow + r)));
      let draws = 0;
      const beam = (g.numBeams ?? 1) > 1;
      if (sampling) {
        if (beam) g.random = createRandom(seeds[0]);
        else {
          // one stream per output row: the loop draws once per row, in row order, every step
          const rngs = seeds.map((s) => createRandom(s));
          g.random = () => rngs[draws++ % rowsOut]();
        }
      }
      const streamers = onToken ? Array.from({ length: rowsOut }, (_, r) => rowStreamer(ctx.tokenizer, firstRow + r, onToken, stops)) : [];
      // in-graph greedy (CPU): a caller who streams gets its tokens four at a time, a row that meets
      // a stop string runs at most three tokens past it before the host sees it, and an abort is
      // seen within four tokens
      if (opts.onToken || stops.length || opts.signal) g.greedyChunk = 4;
      g.signal = opts.signal;
      // where each greedy or sampled row stopped (new tokens kept); beam rows are cut afterwards
      const stoppedAt = new Map<number, number>();
      if (stops.length) {
        g.stopRow = (r, toks) => {
          if (findStop(stopText(ctx.tokenizer, toks), stops) === undefined) return false;
          stoppedAt.set(r, toks.length);
          return true;
        };
      }
      if (opts.logprobs) g.logprobs = { top: opts.topLogprobs ?? 0 };
      g.onToken = (e: TokenEvent) => {
        if (sampling && !beam && draws !== (e.step + 1) * rowsOut) {
          throw new BlipRuntimeError('BLIP5031', `sampling drew ${draws} numbers by step ${e.step} for ${rowsOut} rows; per-row seeds need one draw per row per step`);
        }
        callbacks?.check();
        streamers.forEach((s, r) => s.event(e, r));
      };
      const out = await generate(model, built.prompt, g);
      await callbacks?.settled();
      const t3 = performance.now();
      // (the batch's images were read and its text built up front: that work counts as the batch's)
      const before = readMs + buildMs;
      const timingsMs: Timings = { preprocess: before + t1 - t0 - openEncode, encode: t2 - t1, prefill: model.prefillMs, decode: t3 - t2 - openDecoder - model.prefillMs, total: before + t3 - t0 };
      if (ctx.stages) timingsMs.load = openEncode + openDecoder;
      const seqs: GeneratedSequence[] = out.sequences.map((s, r) => {
        const fresh = s.slice(out.promptLength);
        const cut = fresh.findIndex((t) => eos.has(t));
        const tokenIds = cut < 0 ? fresh : fresh.slice(0, cut + 1);
        const whole = ctx.tokenizer.decode(tokenIds, { skipSpecialTokens: true });
        // a row the loop stopped, a beam row (cut afterwards), or a finished text whose last tokens complete a stop
        const at = stoppedAt.get(r);
        const stopped = at !== undefined ? cutAt(ctx.tokenizer, tokenIds, at, stops) : beam ? cutAtStop(ctx.tokenizer, tokenIds, stops) : cutText(tokenIds, whole, stops);
        const seq: GeneratedSequence = stopped ? { text: pyStrip(stopped.text), tokenIds: stopped.tokenIds, stop: stopped.stop } : { text: pyStrip(whole), tokenIds };
        if (out.sequenceScores) seq.score = out.sequenceScores[r];
        if (out.logprobs) seq.logprobs = logprobEntries(ctx.tokenizer, seq.tokenIds, out.logprobs[r]);
        return seq;
      });
      if (beam && onToken) {
        // an abort or a rejected async onToken stops the replay as it stops decoding: at the next token
        const stopping = () => {
          opts.signal?.throwIfAborted();
          callbacks?.check();
        };
        for (let r = 0; r < seqs.length; r++) await streamers[r].replay(seqs[r].tokenIds, stopping);
        await callbacks?.settled();
      }
      for (let b = 0; b < B; b++) {
        const mine = seqs.slice(b * nRet, (b + 1) * nRet);
        const res: GenerateResult = { ...mine[0], timingsMs: { ...timingsMs } }; // each result its own copy
        if (nRet > 1) res.sequences = mine;
        results.push(res);
      }
      doneWith(encoded, B, ctx.encodeRows ?? B, ctx.encodeBuffers); // read by nothing now (encodeRows.ts)
      await ctx.stages?.done();
    }
  } catch (e) {
    // the promises onToken returned settle before the call rejects, as they do before it resolves
    await callbacks?.drain();
    throw e;
  }
  return results;
}

/**
 * The caller's onToken, as the loop calls it. A callback that returns a promise (an async
 * function) is not awaited token by token (the decoder does not wait for it), but the call settles
 * only once every promise it returned has settled, and one that rejects rejects the call with its
 * reason: generation stops at the next token, as when onToken throws.
 */
function tokenCallbacks(cb: NonNullable<GenerateOptions['onToken']>) {
  const pending: Promise<unknown>[] = [];
  let failed: { reason: unknown } | undefined;
  return {
    call(row: number, text: string, id: number): void {
      const r: unknown = cb(row, text, id);
      if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') {
        pending.push(Promise.resolve(r as PromiseLike<unknown>).then(undefined, (reason: unknown) => void (failed ??= { reason })));
      }
    },
    /** Throws the first rejection seen so far. */
    check(): void {
      if (failed) throw failed.reason;
    },
    /** Waits for the promises returned so far, whatever they settle to (the call is failing anyway). */
    async drain(): Promise<void> {
      while (pending.length) await Promise.all(pending.splice(0));
    },
    /** Waits for the promises returned so far; throws the first rejection. */
    async settled(): Promise<void> {
      while (pending.length) await Promise.all(pending.splice(0));
      if (failed) throw failed.reason;
    },
  };
}

/**
 * The logprobs of a sequence's tokens. A token's text is what it adds to the decode of the tokens
 * before it (a SentencePiece word's leading space, a WordPiece continuation without "##"), so the
 * texts, and the bytes, of a sequence's tokens add up to its text; an alternative's is what it
 * would have added there. A special token (EOS, padding, a sentinel), which the text leaves out,
 * gives its name and no bytes.
 */
function logprobEntries(tok: HfTokenizer, tokenIds: number[], entries: TokenLogprob[]): TokenLogprobEntry[] {
  const out: TokenLogprobEntry[] = [];
  const dec = (ids: number[]) => tok.decode(ids, { skipSpecialTokens: true });
  const special = new Set(tok.allSpecialIds);
  let before = '';
  for (let i = 0; i < Math.min(entries.length, tokenIds.length); i++) {
    const prefix = tokenIds.slice(0, i);
    const info = (id: number, logprob: number): TokenLogprobInfo => {
      if (special.has(id)) return { id, token: tok.idToToken(id) ?? '', bytes: [], logprob };
      const after = dec([...prefix, id]);
      const token = after.startsWith(before) ? after.slice(before.length) : tok.decode([id]);
      return { id, token, bytes: tok.tokenBytes(id, token), logprob };
    };
    const e = entries[i];
    out.push({ ...info(e.token, e.logprob), top: e.top.map((t) => info(t.token, t.logprob)) });
    before = dec(tokenIds.slice(0, i + 1));
  }
  return out;
}

/**
 * Streams one output row through TextStreamer (one callback per token), holding back what may be
 * the start of a stop string and trimming the white space around the text. The streamer keeps its
 * cache at newlines (unlike transformers') and releases only text later tokens cannot change (not a
 * trailing byte-fallback run's), so that the pieces add up to the row's text.
 */
function rowStreamer(tok: HfTokenizer, row: number, cb: (row: number, text: string, id: number) => void, stops: string[]) {
  let started = false;
  let done = false;
  let pending = '';
  let held = '';
  const filter = stops.length ? new StopFilter(stops) : undefined;
  const streamer = new TextStreamer(tok, (text, end) => (pending += filter ? filter.push(text) + (end ? filter.end() : '') : text), { skipSpecialTokens: true, resetAtNewline: false, holdIncomplete: true });
  const feed = (id: number, last: boolean) => {
    streamer.put([id]);
    if (last) {
      done = true;
      streamer.end();
    }
    let text = held + pending;
    pending = '';
    if (!started) {
      text = pyLstrip(text);
      if (text) started = true;
    }
    // white space at the end waits for more text: the last token's (a newline the tokenizer
    // decodes) would otherwise reach the caller though the row's text is trimmed
    held = '';
    if (done) text = pyRstrip(text);
    else {
      const body = pyRstrip(text);
      [text, held] = [body, text.slice(body.length)];
    }
    cb(row, text, id);
  };
  return {
    event(e: TokenEvent, r: number) {
      if (!done) feed(e.tokens[r], e.finished[r]);
    },
    /** Streams a finished sequence, calling `stopping` before each token (after a microtask, in which an async onToken's rejection is seen). */
    async replay(ids: number[], stopping: () => void) {
      for (let i = 0; i < ids.length; i++) {
        await Promise.resolve();
        stopping();
        feed(ids[i], i === ids.length - 1);
      }
    },
  };
}
