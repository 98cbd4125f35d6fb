// Stop strings, as OpenAI's `stop` and vLLM treat them: a sequence ends at the token whose text
// completes one of the strings, and the returned text is what came before it. They are matched in
// the decoded new tokens (special tokens skipped), before the surrounding white space is trimmed.
import { GenerationConfigError } from '../errors.js';
import type { Decoder } from './streamer.js';

/** The most stop strings a call takes (OpenAI's limit). */
export const MAX_STOP_STRINGS = 4;
/** The longest stop string, in UTF-16 units: a stop is a delimiter, and the streamed check costs its length squared. */
export const MAX_STOP_LENGTH = 256;

/** `stop` as given (a string or a list of them) as a list; refuses empty or long strings and too many. */
export function stopList(stop: unknown, what = 'stop'): string[] {
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(list)) throw new GenerationConfigError(`${what} must be a string or a list of strings`);
  if (list.length > MAX_STOP_STRINGS) throw new GenerationConfigError(`${what} takes at most ${MAX_STOP_STRINGS} strings, found ${list.length}`);
  list.forEach((s, i) => {
    if (typeof s !== 'string') throw new GenerationConfigError(`${what}[${i}] must be a string`);
    if (s === '') throw new GenerationConfigError(`${what}[${i}] is empty: a stop string needs at least one character`);
    if (s.length > MAX_STOP_LENGTH) throw new GenerationConfigError(`${what}[${i}] is ${s.length} characters; a stop string has at most ${MAX_STOP_LENGTH}`);
  });
  return [...new Set(list as string[])];
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

/** The new tokens through the one whose text completes a stop string, the text before the stop, and the stop; undefined when none occurs. */
export function cutAtStop(tok: Decoder, tokenIds: number[], stops: readonly string[]): { tokenIds: number[]; text: string; stop: string } | undefined {
  if (stops.length === 0 || !findStop(tok.decode(tokenIds, { skipSpecialTokens: true }), stops)) return undefined;
  // the shortest prefix that shows a stop (a byte-fallback token can complete a character late,
  // so the test is on each prefix's own text, not on slices of the whole)
  for (let k = 1; k <= tokenIds.length; k++) {
    const text = tok.decode(tokenIds.slice(0, k), { skipSpecialTokens: true });
    const hit = findStop(text, stops);
    if (hit) return { tokenIds: tokenIds.slice(0, k), text: text.slice(0, hit.index), stop: hit.stop };
  }
  return undefined;
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
