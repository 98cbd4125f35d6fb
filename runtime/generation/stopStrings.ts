// Stop strings, as OpenAI's `stop` and vLLM treat them: a sequence ends at the token whose text
// completes one of the strings, and the returned text is what came before it. They are matched in
// the decoded new tokens (special tokens skipped), before the surrounding white space is trimmed.
import { GenerationConfigError } from '../errors.js';
import type { Decoder } from './streamer.js';

/** The most stop strings a call takes (OpenAI's limit). */
export const MAX_STOP_STRINGS = 4;
/** The longest stop string, in characters: a stop is a delimiter, and the streamed check costs its length squared. */
export const MAX_STOP_LENGTH = 256;

/** `stop` as given (a string or a list of them) as a list; refuses empty or long strings and too many. */
export function stopList(stop: unknown, what = 'stop'): string[] {
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(list)) throw new GenerationConfigError(`${what} must be a string or a list of strings`);
  // (an index loop: forEach would skip the holes of a sparse array)
  for (let i = 0; i < list.length; i++) {
    const s: unknown = list[i];
    if (typeof s !== 'string') throw new GenerationConfigError(`${what}[${i}] must be a string`);
    if (s === '') throw new GenerationConfigError(`${what}[${i}] is empty: a stop string needs at least one character`);
    const chars = [...s].length;
    if (chars > MAX_STOP_LENGTH) throw new GenerationConfigError(`${what}[${i}] is ${chars} characters; a stop string has at most ${MAX_STOP_LENGTH}`);
  }
  const distinct = [...new Set(list as string[])];
  if (distinct.length > MAX_STOP_STRINGS) throw new GenerationConfigError(`${what} takes at most ${MAX_STOP_STRINGS} different strings, found ${distinct.length}`);
  return distinct;
}

/**
 * The stop string completed first in `text` (the one ending earliest; of two ending at the same
 * place, the longer) and where it starts. Ending first, not starting first, makes the answer the
 * same however the text arrives: generation stops at the token that completes a stop.
 */
export function findStop(text: string, stops: readonly string[]): { index: number; stop: string } | undefined {
  let best: { index: number; stop: string } | undefined;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i < 0) continue;
    const end = i + s.length;
    const bestEnd = best ? best.index + best.stop.length : Infinity;
    if (end < bestEnd || (end === bestEnd && s.length > best!.stop.length)) best = { index: i, stop: s };
  }
  return best;
}

/** The text stop strings are matched in: the decoded new tokens that later tokens cannot change. */
export function stopText(tok: Decoder, tokenIds: number[]): string {
  return (tok.decodeStable ?? tok.decode).call(tok, tokenIds, { skipSpecialTokens: true });
}

/** A sequence cut at a stop string: its tokens through the one at which the stop was seen, the text before the stop, the stop. */
export interface StopCut {
  tokenIds: number[];
  text: string;
  stop: string;
}

/** `tokenIds` cut where `text`, their decode, shows a stop; undefined when it shows none. */
export function cutText(tokenIds: number[], text: string, stops: readonly string[]): StopCut | undefined {
  const hit = findStop(text, stops);
  return hit && { tokenIds, text: text.slice(0, hit.index), stop: hit.stop };
}

/** Where a row that a stop ended (after `count` new tokens) is cut. */
export function cutAt(tok: Decoder, tokenIds: number[], count: number, stops: readonly string[]): StopCut | undefined {
  const kept = tokenIds.slice(0, count);
  return cutText(kept, stopText(tok, kept), stops);
}

/**
 * The new tokens through the first whose text completes a stop string, the text before the stop,
 * and the stop; undefined when none does. Each prefix is decoded on its own: with byte fallback a
 * later byte can turn earlier text into U+FFFD, so the decode of the whole is no guide. (Quadratic
 * in the length: for beam search, whose rows the loop does not stop; greedy and sampled rows record
 * where they stopped.)
 */
export function cutAtStop(tok: Decoder, tokenIds: number[], stops: readonly string[]): StopCut | undefined {
  if (stops.length === 0) return undefined;
  for (let k = 1; k <= tokenIds.length; k++) {
    const cut = cutAt(tok, tokenIds, k, stops);
    if (cut) return cut;
  }
  // a finished sequence's text is final: a stop in what its last tokens left open (a byte run, an
  // incomplete character, which no later token will change now) ends it too
  return cutText(tokenIds, tok.decode(tokenIds, { skipSpecialTokens: true }), stops);
}

/**
 * Streamed text through the stop strings: releases what cannot be the start of a stop, holds a
 * tail that may still become one, and releases nothing from the first stop on.
 */
export class StopFilter {
  private held = '';
  private stopped = false;
  constructor(private readonly stops: readonly string[]) {}

  /** The part of `text` (the next streamed piece) that is safe to release now. */
  push(text: string): string {
    if (this.stopped) return '';
    const acc = this.held + text;
    const hit = findStop(acc, this.stops);
    if (hit) {
      this.stopped = true;
      this.held = '';
      return acc.slice(0, hit.index);
    }
    // hold the longest tail that is a proper prefix of a stop string
    let keep = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, acc.length); k > keep; k--) {
        if (acc.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    this.held = acc.slice(acc.length - keep);
    return acc.slice(0, acc.length - keep);
  }

  /** The end of the stream: what was held back (nothing after a stop). */
  end(): string {
    const rest = this.stopped ? '' : this.held;
    this.held = '';
    return rest;
  }
}
