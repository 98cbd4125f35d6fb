// Diagnostics for people (`path:line:col - error BLIPnnnn: message` and a code frame) and for
// programs (`--json`: an array of plain objects with 1-based line/column ranges).
import type { Diagnostic } from './Diagnostic.js';
import { sortDiagnostics } from './Diagnostic.js';
import { SourceFile } from './SourceFile.js';
import { codeFrame } from './codeFrame.js';

/** Source texts by path, for frames and end positions. A missing file prints without a frame. */
export type Sources = ReadonlyMap<string, string>;

export interface FormatOptions {
  /** Print at most this many diagnostics, then "… and N more" (default 20). */
  max?: number;
}

function sourceFiles(sources: Sources): (path: string) => SourceFile | undefined {
  const cache = new Map<string, SourceFile>();
  return (path) => {
    let f = cache.get(path);
    if (!f && sources.has(path)) cache.set(path, (f = new SourceFile(path, sources.get(path)!)));
    return f;
  };
}

export function formatDiagnostic(d: Diagnostic, sources: Sources): string {
  return formatDiagnostics([d], sources, { max: 1 }).replace(/\n$/, '');
}

export function formatDiagnostics(ds: readonly Diagnostic[], sources: Sources, opts: FormatOptions = {}): string {
  const max = opts.max ?? 20;
  const file = sourceFiles(sources);
  const sorted = sortDiagnostics(ds);
  const parts: string[] = [];
  for (const d of sorted.slice(0, max)) {
    const { loc } = d;
    const lines = [`${loc.file}:${loc.line}:${loc.column} - ${d.severity} ${d.code}: ${d.message}`];
    const src = file(loc.file);
    if (src) lines.push('', codeFrame(src, loc.start, loc.end));
    for (const r of d.related ?? []) {
      lines.push('', `  ${r.loc.file}:${r.loc.line}:${r.loc.column}: ${r.message}`);
      const rs = file(r.loc.file);
      if (rs) lines.push(codeFrame(rs, r.loc.start, r.loc.end).replace(/^/gm, '  '));
    }
    parts.push(lines.join('\n'));
  }
  if (sorted.length > max) parts.push(`… and ${sorted.length - max} more (${count(sorted)} in all)`);
  else if (sorted.length > 1) parts.push(count(sorted));
  return parts.length ? parts.join('\n\n') + '\n' : '';
}

function count(ds: readonly Diagnostic[]): string {
  const errors = ds.filter((d) => d.severity === 'error').length;
  const warnings = ds.length - errors;
  const p = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  return [errors ? p(errors, 'error') : '', warnings ? p(warnings, 'warning') : ''].filter(Boolean).join(', ');
}

export interface JsonDiagnostic {
  code: string;
  severity: string;
  message: string;
  file: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  related?: Array<{ message: string; file: string; line: number; column: number }>;
}

/** The `--json` form: sorted, positions 1-based, end exclusive. */
export function diagnosticsToJson(ds: readonly Diagnostic[], sources: Sources): JsonDiagnostic[] {
  const file = sourceFiles(sources);
  return sortDiagnostics(ds).map((d) => {
    const end = file(d.loc.file)?.position(d.loc.end) ?? { line: d.loc.line, column: d.loc.column + Math.max(0, d.loc.end - d.loc.start) };
    const j: JsonDiagnostic = {
      code: d.code,
      severity: d.severity,
      message: d.message,
      file: d.loc.file,
      line: d.loc.line,
      column: d.loc.column,
      endLine: end.line,
      endColumn: end.column,
    };
    if (d.related) j.related = d.related.map((r) => ({ message: r.message, file: r.loc.file, line: r.loc.line, column: r.loc.column }));
    return j;
  });
}
