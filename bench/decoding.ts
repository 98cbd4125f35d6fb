// The decoding both sides of the bench run, stated in full on each side. Neither side may fall back
// on its own defaults: blip-graph's come from the graph's `generation` block (instructblip-*.blip
// carries LAVIS's repetition_penalty 1.5), transformers' from the checkpoint's generation_config,
// and the two differ. Anything that changes greedy scores is therefore passed explicitly.
import type { GenerateOptions } from '../runtime/tasks/generate.js';

export interface BenchDecoding {
  /** Exactly this many new tokens (EOS suppressed until then). */
  tokens: number;
  /** 1 = plain greedy. */
  repetitionPenalty: number;
  /** Beam search with this many beams (early_stopping false, length_penalty 1); 1 = greedy. */
  beams: number;
}

/** blip-graph's generate options for a bench run: greedy or beam search, every score-changing setting explicit. */
export function oursGenerateOptions(d: BenchDecoding, prompt: GenerateOptions['prompt'], batchSize: number): GenerateOptions {
  return {
    prompt,
    maxNewTokens: d.tokens,
    minNewTokens: d.tokens,
    numBeams: d.beams,
    doSample: false,
    repetitionPenalty: d.repetitionPenalty,
    noRepeatNgramSize: 0,
    lengthPenalty: 1,
    earlyStopping: false,
    batchSize,
  };
}

/** The same settings as bench/torch_generate.py flags (it passes them to transformers' generate). */
export function torchGenerateArgs(d: BenchDecoding): string[] {
  return ['--max-new-tokens', String(d.tokens), '--repetition-penalty', String(d.repetitionPenalty), '--num-beams', String(d.beams)];
}

/** The same settings as bench/ours.ts flags. */
export function oursArgs(d: BenchDecoding): string[] {
  return ['--tokens', String(d.tokens), '--repetition-penalty', String(d.repetitionPenalty), '--beams', String(d.beams)];
}
