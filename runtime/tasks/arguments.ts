// The task methods' arguments as JavaScript callers may pass them (no type checker): a list where a
// list belongs, texts that are strings, an options object with known keys. Images themselves are
// checked as they are read (images.ts). Each failure is a BLIP5030 naming what was found.
import { GenerationConfigError } from '../errors.js';
import { unknownOption } from '../../src/diagnostics/suggest.js';

/** How an argument that is not what was expected is named in messages. */
export function describeArgument(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'object') {
    const keys = Object.keys(v);
    return keys.length ? `an object with ${keys.slice(0, 4).map((k) => `${k}: ${typeof (v as Record<string, unknown>)[k]}`).join(', ')}` : 'an empty object';
  }
  return `${typeof v} ${String(v)}`;
}

/** A value named after "found" in an option's message: a number as it is, anything else as describeArgument says (a string quoted, so "5" is not taken for 5). */
export function found(v: unknown): string {
  return typeof v === 'number' || typeof v === 'boolean' ? String(v) : describeArgument(v);
}

/** The `signal` option, for JavaScript callers: an AbortSignal or nothing (BLIP5030 otherwise). */
export function checkSignal(signal: unknown): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new GenerationConfigError(`signal must be an AbortSignal (AbortController.signal), found ${found(signal)}`);
}

export function checkImageList(images: unknown): void {
  if (!Array.isArray(images)) throw new GenerationConfigError(`images must be an array (one entry per image), found ${describeArgument(images)}`);
}

export function checkTextList(texts: unknown): void {
  if (!Array.isArray(texts)) throw new GenerationConfigError(`texts must be an array of strings, found ${describeArgument(texts)}`);
  const bad = texts.findIndex((t) => typeof t !== 'string');
  if (bad >= 0) throw new GenerationConfigError(`texts[${bad}] must be a string, found ${describeArgument(texts[bad])}`);
}

/** `opts` as an options object with none but `known` keys; null or undefined are no options. */
export function optionsObject<T extends object>(opts: unknown, known: ReadonlyArray<keyof T & string>): T {
  if (opts === undefined || opts === null) return {} as T;
  if (typeof opts !== 'object') throw new GenerationConfigError(`options must be an object, found ${describeArgument(opts)}`);
  const unknown = unknownOption(opts, known);
  if (unknown) throw new GenerationConfigError(unknown);
  return opts as T;
}

/**
 * A call's options as they are when it is made: a copy of the object and of the lists it holds
 * (prompt, seed, stop). A call reads its options after its first await, and a staged model's queued
 * call only when its turn comes, so a caller who reuses one object (`o.seed = i; ps.push(m.generate(
 * [img], o))`) would otherwise change calls already made. Functions and other values (onToken, an
 * AbortSignal) are kept as given; anything but an object is returned as it is, for optionsObject to refuse.
 * `names`: the task's option names, read by name too, as the call would read them, so that a value
 * the object inherits (Object.create(defaults)) or computes (a class's getter) is copied as well —
 * a spread copies only the object's own enumerable keys.
 */
export function optionsAsCalled<T>(opts: T, names: readonly string[] = []): T {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) return opts;
  const copy: Record<string, unknown> = { ...(opts as Record<string, unknown>) };
  for (const k of names) {
    const v = (opts as Record<string, unknown>)[k];
    if (!Object.hasOwn(copy, k) && v !== undefined) copy[k] = v;
  }
  for (const [k, v] of Object.entries(copy)) if (Array.isArray(v)) copy[k] = [...(v as unknown[])];
  return copy as T;
}

/** A list argument as it is when the call is made (see optionsAsCalled); anything but an array as it is, for the task's check to refuse. */
export function listAsCalled<T>(list: T): T {
  return (Array.isArray(list) ? [...(list as unknown[])] : list) as T;
}

/**
 * `e` with the library's option names in its message replaced by another surface's (a command's
 * flags, a server's JSON fields): GenerateOptions' camelCase names are the library's, and the CLI
 * and `blip serve` pass their own settings through it. Only names with a capital are replaced
 * (`temperature`, `seed` and `stop` read the same everywhere). Anything but a BLIP5030 / BLIP5032
 * error is returned as it is.
 */
export function withOptionNames(e: unknown, names: Readonly<Record<string, string>>): unknown {
  if (!(e instanceof Error) || !['BLIP5030', 'BLIP5032'].includes((e as { code?: unknown }).code as string)) return e;
  const keys = Object.keys(names).filter((k) => /^[a-z]+[A-Z]\w*$/.test(k)); // ('doSample: true' is a replacement of its own)
  if (!keys.length) return e;
  e.message = e.message.replace(new RegExp(`\\b(${keys.join('|')})\\b(: true)?`, 'g'), (_all, k: string, t: string | undefined) => (t && names[`${k}: true`] ? names[`${k}: true`]! : names[k]! + (t ?? '')));
  return e;
}
