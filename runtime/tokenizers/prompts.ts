// Building model inputs from text per family, as transformers' processors and generate() do.
// Each function returns a padded batch (ids and attention mask, row-major lists).
import type { HfTokenizer } from './hf.js';

export interface TextBatch {
  inputIds: number[][];
  attentionMask: number[][];
}

/**
 * BLIP captioning decoder prompt (BlipForConditionalGeneration.generate): the processor's
 * `[CLS] text [SEP]` batch (right-padded), first column replaced by the decoder start id ([DEC] =
 * text_config.bos_token_id) and the last column dropped — on the padded batch, as transformers does.
 * Without prompts the decoder starts from `[decoderStartId]` alone.
 */
export function blipDecoderPrompt(tok: HfTokenizer, prompts: string[] | null, batch: number, decoderStartId: number): TextBatch {
  if (!prompts) return { inputIds: Array.from({ length: batch }, () => [decoderStartId]), attentionMask: Array.from({ length: batch }, () => [1]) };
  const enc = tok.encodeBatch(prompts);
  return {
    inputIds: enc.inputIds.map((r) => [decoderStartId, ...r.slice(1, -1)]),
    attentionMask: enc.attentionMask.map((r) => r.slice(0, -1)),
  };
}

/** Encoder-side text (BLIP VQA question, ITM / ITC caption): the tokenizer's batch as it is. */
export function encoderText(tok: HfTokenizer, texts: string[]): TextBatch {
  return tok.encodeBatch(texts);
}

export interface LlmPromptOptions {
  /** `<image>` placeholder id (BLIP-2 / InstructBLIP with image_token_index); absent for the legacy layout. */
  imageTokenId?: number;
  /** Number of placeholders (num_query_tokens). */
  numQueryTokens?: number;
  /** text_config.bos_token_id: the prompt when there is no text (generate() builds it). */
  bosTokenId?: number;
  /** Padding side for prompts of different lengths (default: the tokenizer's). */
  paddingSide?: 'left' | 'right';
  /** The pad id when the tokenizer has none (the manifest's text.pad_token_id). */
  padTokenId?: number;
}

/**
 * BLIP-2 / InstructBLIP language-model prompt (Blip2Processor / InstructBlipProcessor):
 * `[image_token] * N` in front of every row of the tokenizer's padded batch (the tokenizer adds its
 * own BOS / EOS: OPT `</s>` first, T5 `</s>` last, Vicuna its BOS first). With no text,
 * generate() uses `[image_token] * N + [bos_token_id]`. The legacy layout (no image_token_index)
 * has no placeholders: the query outputs are prepended as embeddings by the model.
 */
export function llmPrompt(tok: HfTokenizer, prompts: string[] | null, batch: number, opts: LlmPromptOptions): TextBatch {
  const n = opts.imageTokenId !== undefined ? (opts.numQueryTokens ?? 0) : 0;
  const img = new Array<number>(n).fill(opts.imageTokenId ?? 0);
  const ones = new Array<number>(n).fill(1);
  if (!prompts) {
    if (opts.bosTokenId === undefined) throw new Error('a prompt-less generation needs bos_token_id');
    return {
      inputIds: Array.from({ length: batch }, () => [...img, opts.bosTokenId!]),
      attentionMask: Array.from({ length: batch }, () => [...ones, 1]),
    };
  }
  const enc = tok.encodeBatch(prompts, { paddingSide: opts.paddingSide, padTokenId: tok.padTokenId ?? opts.padTokenId });
  return {
    inputIds: enc.inputIds.map((r) => [...img, ...r]),
    attentionMask: enc.attentionMask.map((r) => [...ones, ...r]),
  };
}

/** InstructBLIP's Q-Former instruction: the second (BERT) tokenizer's batch. */
export function qformerPrompt(qtok: HfTokenizer, prompts: string[]): TextBatch {
  return qtok.encodeBatch(prompts);
}

/** Flatten a batch to BigInt64Array rows (ONNX int64 input), with its dims. */
export function toInt64(rows: number[][]): { data: BigInt64Array; dims: [number, number] } {
  const b = rows.length;
  const s = b ? rows[0].length : 0;
  const data = new BigInt64Array(b * s);
  rows.forEach((r, i) => {
    if (r.length !== s) throw new Error('ragged batch');
    for (let j = 0; j < s; j++) data[i * s + j] = BigInt(r[j]);
  });
  return { data, dims: [b, s] };
}
