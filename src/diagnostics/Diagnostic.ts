// A user-facing problem with a place in a source file. Every error and warning the front end,
// the compiler and the runtime report about a `.blip` file or a checkpoint is one of these.
import type { SourceLoc } from '../ir/types.js';
import { CODES, type Code } from './codes.js';

export type Severity = 'error' | 'warning';

export interface RelatedInfo {
  message: string;
  loc: SourceLoc;
}

export interface Diagnostic {
  /** `BLIPnnnn`, listed in src/diagnostics/codes.ts and docs/diagnostics.md. */
  code: string;
  severity: Severity;
  /** One line: what was expected and what was found. Never contains the location. */
  message: string;
  loc: SourceLoc;
  related?: RelatedInfo[];
}

/** A diagnostic with the severity its code is registered with (see codes.ts). */
export function diagnostic(code: Code, loc: SourceLoc, message: string, related?: RelatedInfo[]): Diagnostic {
  const d: Diagnostic = { code, severity: CODES[code].severity, message: tidyMessage(message), loc };
  if (related?.length) d.related = related;
  return d;
}

export const hasErrors = (ds: readonly Diagnostic[]): boolean => ds.some((d) => d.severity === 'error');

/** Sorted by file, then offset, then code; stable otherwise. */
export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  return [...ds].sort(
    (a, b) => (a.loc.file < b.loc.file ? -1 : a.loc.file > b.loc.file ? 1 : 0) || a.loc.start - b.loc.start || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0),
  );
}

/**
 * A message as it prints: a quoted name of more than 80 characters cut to its first 40 (a
 * 5000-character name made a 5 KB line; paths are kept whole), control characters shown as
 * escapes, not sent to the terminal.
 */
export function tidyMessage(message: string): string {
  return message
    // (a quote opens after a space or bracket, and closes before one or punctuation; a file path,
    // whose end names the file, is left whole)
    .replace(/(^|[\s([{])(['"])(?=\S)([^'"\n]{81,}?)\2(?=$|[\s:;,.)?\]}])/g, (all: string, pre: string, q: string, body: string) =>
      /[\\/]/.test(body) ? all : `${pre}${q}${[...body].slice(0, 40).join('')}…${q}`,
    )
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
