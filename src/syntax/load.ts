// The front end's entry point: a `.blip` file (and the files it imports) -> a checked IrProgram
// and every diagnostic found on the way. Never throws for anything wrong with the input.
import { closeSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { IrProgram, SourceLoc } from '../ir/types.js';
import { validateIr } from '../ir/validate.js';
import { diagnostic, hasErrors, sortDiagnostics, type Diagnostic } from '../diagnostics/Diagnostic.js';
import { checkModel } from '../checks/index.js';
import { BlockAttributesRule } from '../checks/BlockAttributesRule.js';
import { InputTypeRule } from '../checks/InputTypeRule.js';
import { NodeAttributesRule } from '../checks/NodeAttributesRule.js';
import { NodeKindRule } from '../checks/NodeKindRule.js';
import type { ModelSyntax } from './ast.js';
import { parse } from './parse.js';
import { MAX_FILE_CHARS } from './fileChecks.js';
import { shippedGraphNamedBy } from '../shippedGraph.js';
import { Resolver, type ParsedFile } from './resolve.js';
import { toIrModel } from './toIr.js';

export interface LoadOptions {
  /** Reads a file's text; throws (an errno error) when it can't. Default: the file system, as UTF-8. */
  readFile?: (path: string) => string;
  /** The root file's text, when it is already in memory (the path is then only its name). */
  text?: string;
}

export interface LoadResult {
  /** Present when there are no errors (warnings allowed). */
  program?: IrProgram;
  /** Sorted by file and position. */
  diagnostics: Diagnostic[];
  /** Text of every file read, by the path diagnostics use: for code frames. */
  sources: Map<string, string>;
}

/** A file the parser would refuse as too large (BLIP1015), refused without reading it all. */
class FileTooLarge extends Error {
  /** `bytes`: its size, or (a pipe, a device) how much was read before giving up. */
  constructor(
    readonly bytes: number,
    readonly atLeast: boolean,
  ) {
    super('too large');
  }
}

/** Why a .blip file could not be read, as its diagnostic (at the import that names it, if any). */
export function readFailure(p: string, e: unknown, from?: SourceLoc): Diagnostic {
  const top: SourceLoc = { file: p, line: 1, column: 1, start: 0, end: 0 };
  if (e instanceof FileTooLarge) {
    const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
    return diagnostic('BLIP1015', top, `file too large: expected at most ${mib(MAX_FILE_CHARS)} MiB of text, found ${e.atLeast ? 'more than ' : ''}${mib(e.bytes)} MiB`);
  }
  const hint = (e as { code?: string })?.code === 'ENOENT' ? shippedGraphHint(p) : '';
  return diagnostic('BLIP2001', from ?? top, `cannot read ${from ? 'imported ' : ''}file '${p}': expected a readable .blip file, found ${readError(e)}${hint}`);
}

/**
 * Where blip-graph's own graph of the name a missing `p` gives is, as the end of its BLIP2001
 * message: the help's and docs' `graphs/blip2-opt.blip` is there only in a clone, not in a project
 * that installed the package. Nothing when `p` is that file itself.
 */
function shippedGraphHint(p: string): string {
  const shipped = shippedGraphNamedBy(p);
  return shipped && path.resolve(p) !== shipped ? `; blip-graph ships a graph of that name: ${shipped}` : '';
}

/** More bytes than this are more UTF-16 units than the parser takes (UTF-8 spends at most 3 bytes on one). */
const MAX_FILE_BYTES = 3 * MAX_FILE_CHARS;

/**
 * A .blip file's text, from a path or a file descriptor (standard input). A regular file over the
 * limit is refused by its size; a pipe or device (/dev/zero) is read until it ends or passes the
 * limit, never without end. Invalid UTF-8 becomes U+FFFD (reported by the parser), never an exception.
 */
export function readBlipFile(p: string | number): string {
  if (typeof p === 'string') {
    const st = statSync(p);
    if (st.isFile() && st.size > MAX_FILE_BYTES) throw new FileTooLarge(st.size, false);
    if (st.isDirectory()) throw Object.assign(new Error(`${p} is a directory`), { code: 'EISDIR' });
  }
  const fd = typeof p === 'string' ? openSync(p, 'r') : p;
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(1 << 16);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') continue; // a non-blocking pipe not ready yet
        throw e;
      }
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > MAX_FILE_BYTES) throw new FileTooLarge(total, true);
    }
    return new TextDecoder('utf-8').decode(Buffer.concat(chunks, total));
  } finally {
    if (typeof p === 'string') closeSync(fd);
  }
}

/** 'a named pipe', 'a device', 'a socket' for such a path; undefined for a regular file, a folder or none. */
function specialFileKind(p: string): string | undefined {
  let st;
  try {
    st = statSync(p);
  } catch {
    return undefined; // (reading it says why)
  }
  if (st.isFIFO()) return 'a named pipe';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return undefined;
}

function readError(e: unknown): string {
  const code = (e as { code?: string })?.code;
  if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE') return 'a path with a NUL character';
  return code === 'ENOENT'
    ? 'no such file'
    : code === 'EISDIR'
      ? 'it is a directory'
      : code === 'EACCES'
        ? 'permission denied'
        : ((e as Error)?.message ?? String(e));
}

/** Pushes every item of `items` onto `to`: `to.push(...items)` overflows the stack for a long list (a file of 100k errors). */
export function append<T>(to: T[], items: readonly T[]): void {
  for (const x of items) to.push(x);
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = `${d.loc.file}:${d.loc.start}:${d.loc.end}:${d.code}:${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The checks that look at one declaration alone: run on a model with a syntax error, away from it. */
const LOCAL_RULES = [NodeKindRule, InputTypeRule, NodeAttributesRule, BlockAttributesRule];

/** An imported file is a .blip file: anything else (`import "/etc/passwd"`) is refused unread. */
const BLIP_EXTENSION = /\.blip$/i;

/** The path that names a file whatever link or `..` led to it: imports are de-duplicated by it. */
function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/**
 * The spans of a model that a syntax error at one of `damage` may have cut or misread: the member
 * holding the error (from its start to the next member's), or the header before the first member.
 */
function damagedSpans(m: ModelSyntax, damage: readonly number[], reach: number): Array<[number, number]> {
  const starts = m.members.map((x) => x.start);
  const spans: Array<[number, number]> = [];
  for (const o of damage) {
    if (o < m.start || o > reach) continue;
    const i = lastAtMost(starts, o);
    const span: [number, number] = [i < 0 ? m.start : starts[i]!, starts[i + 1] ?? reach];
    const prev = spans[spans.length - 1];
    // (damage comes sorted: a span already listed is not listed again)
    if (prev && prev[0] === span[0] && prev[1] === span[1]) continue;
    spans.push(span);
  }
  return spans;
}

/** The index of the last item of the ascending `xs` that is at most `v` (-1 if none): a binary search. */
function lastAtMost(xs: readonly number[], v: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

export function loadProgram(file: string, opts: LoadOptions = {}): LoadResult {
  const readFile = opts.readFile ?? readBlipFile;
  const sources = new Map<string, string>();
  const diagnostics: Diagnostic[] = [];
  const files: ParsedFile[] = [];
  const damageOf = new Map<string, number[]>();
  const byRealPath = new Map<string, ParsedFile>();
  let importFailed = false;

  const load = (p: string, text: string | undefined, from?: SourceLoc): ParsedFile | undefined => {
    const key = opts.readFile ? path.resolve(p) : realPath(p);
    if (byRealPath.has(key)) return byRealPath.get(key);
    if (from && !BLIP_EXTENSION.test(p)) {
      importFailed = true;
      diagnostics.push(diagnostic('BLIP2001', from, `cannot import '${p}': expected a .blip file, found ${path.extname(p) ? `a '${path.extname(p)}' file` : 'a file without the .blip extension'}`));
      return undefined;
    }
    if (text === undefined) {
      // an import is read only from a regular file: a named pipe would wait for a writer without
      // end, and a device (a link to /dev/zero) is no .blip file (the file given to blip check may
      // be a pipe: <(…) or standard input)
      const kind = from && !opts.readFile ? specialFileKind(p) : undefined;
      if (kind) {
        importFailed = true;
        diagnostics.push(diagnostic('BLIP2001', from!, `cannot import '${p}': expected a regular .blip file, found ${kind}`));
        return undefined;
      }
      try {
        text = readFile(p);
      } catch (e) {
        if (from) importFailed = true;
        diagnostics.push(readFailure(p, e, from));
        return undefined;
      }
    }
    sources.set(p, text);
    const parsed = parse(text, p);
    append(diagnostics, parsed.diagnostics);
    const f: ParsedFile = { path: p, src: parsed.source, ast: parsed.ast };
    byRealPath.set(key, f);
    damageOf.set(p, parsed.damage);
    files.push(f);
    for (const d of parsed.ast.decls) {
      if (d.type !== 'import' || !d.path) continue;
      const target = path.isAbsolute(d.path.value) ? d.path.value : path.join(path.dirname(p), d.path.value);
      load(target, undefined, parsed.source.loc(d.path.start, d.path.end));
    }
    return f;
  };

  const root = load(file, opts.text);
  if (!root) return { diagnostics, sources };

  // A model with a syntax error is checked only by LOCAL_RULES, and only away from the error: what
  // recovery dropped would show up as unknown or unused names. Other models are checked in full.
  // A model recovery gave up on before its '}' reaches up to the next declaration, its first token
  // included: the error lies after the span it parsed, or at the token recovery took for a new
  // declaration ('input model: text' resynchronises at 'model').
  // (everything below is looked up by binary search or in a Set: a file can hold 100k errors)
  // (headerDamaged: an error between 'model' and the '{' may have lost 'extends BASE')
  type Broken = { loc: SourceLoc; damaged: Array<[number, number]>; starts: number[]; headerDamaged: boolean };
  const brokenIn = new Map<string, Broken[]>(); // by file, in source order
  const damageSet = new Map<string, Set<number>>();
  for (const f of files) {
    const damage = [...(damageOf.get(f.path) ?? [])].sort((a, b) => a - b);
    damageSet.set(f.path, new Set(damage));
    const list: Broken[] = [];
    brokenIn.set(f.path, list);
    f.ast.decls.forEach((d, i) => {
      if (d.type !== 'model') return;
      // (a model closed by its '}' reaches no further: a stray token after it is not its error)
      const closed = f.src.text[d.end - 1] === '}';
      const reach = closed ? d.end : i + 1 < f.ast.decls.length ? f.ast.decls[i + 1]!.start : f.src.text.length;
      const from = lastAtMost(damage, d.start - 1) + 1;
      const to = lastAtMost(damage, reach) + 1;
      if (from >= to) return;
      const damaged = damagedSpans(d, damage.slice(from, to), reach);
      const headerDamaged = damage[from]! <= d.bodyStart;
      list.push({ loc: f.src.loc(d.start, reach), damaged, starts: damaged.map((x) => x[0]), headerDamaged });
    });
  }
  const brokenStarts = new Map([...brokenIn].map(([k, v]) => [k, v.map((b) => b.loc.start)]));
  const brokenAt = (x: Diagnostic): Broken | undefined => {
    const list = brokenIn.get(x.loc.file);
    if (!list) return undefined;
    const b = list[lastAtMost(brokenStarts.get(x.loc.file)!, x.loc.start)];
    return b && x.loc.start <= b.loc.end ? b : undefined;
  };
  const inDamage = (x: Diagnostic) => {
    const b = brokenAt(x);
    if (!b) return false;
    const spans = b.damaged;
    // (the spans are in source order and each starts where a member does: the one starting last at or
    // before x is the one that may hold it, but a header span and a member span can share a start)
    const i = lastAtMost(b.starts, x.loc.start);
    for (let j = i; j >= 0 && spans[j]![0] === spans[i]![0]; j--) if (x.loc.start < spans[j]![1]) return true;
    return false;
  };
  // A syntax error outside every model (in an import, between declarations) may have dropped an
  // import, and an import that could not be read holds models too: a base model not found is then their echo.
  const outsideModels = new Set(diagnostics.filter((x) => x.code < 'BLIP2' && damageSet.get(x.loc.file)?.has(x.loc.start) && !brokenAt(x)).map((x) => x.loc.file));
  // A lexical error read as what was meant (`384px`, a number): a check of the same text is its echo.
  // Per file, lexical errors by start, with the furthest end reached by any of the first i of them.
  const lexicalIn = new Map<string, { starts: number[]; maxEnd: number[] }>();
  for (const l of diagnostics.filter((x) => x.code < 'BLIP2').sort((a, b) => a.loc.start - b.loc.start)) {
    let e = lexicalIn.get(l.loc.file);
    if (!e) lexicalIn.set(l.loc.file, (e = { starts: [], maxEnd: [] }));
    e.starts.push(l.loc.start);
    e.maxEnd.push(Math.max(e.maxEnd[e.maxEnd.length - 1] ?? -Infinity, Math.max(l.loc.end, l.loc.start + 1)));
  }
  // (spans overlap when each starts before the other ends, an empty span counted as one character)
  const echoesLexical = (x: Diagnostic) => {
    const e = lexicalIn.get(x.loc.file);
    if (!e) return false;
    const i = lastAtMost(e.starts, Math.max(x.loc.end, x.loc.start + 1) - 1);
    return i >= 0 && e.maxEnd[i]! > x.loc.start;
  };
  // An override of nothing inherited, or a redeclaration of something inherited, in a model whose
  // header is broken ('model derived extends {') is an echo of the base the header lost or misread.
  const INHERITANCE = new Set(['BLIP2006', 'BLIP2007']);
  const isEcho = (x: Diagnostic) =>
    x.code >= 'BLIP2' &&
    (inDamage(x) ||
      echoesLexical(x) ||
      (INHERITANCE.has(x.code) && !!brokenAt(x)?.headerDamaged) ||
      (x.code === 'BLIP2003' && (importFailed || outsideModels.has(x.loc.file))));

  const resolver = new Resolver(files);
  const program: IrProgram = { file, models: [] };
  for (const d of root.ast.decls) {
    if (d.type !== 'model' || !d.name) continue;
    const draft = resolver.resolve(d.name.text);
    if (!draft) continue;
    const at = brokenAt({ loc: { file: root.path, start: d.start } } as Diagnostic);
    const damaged = at?.loc.start === d.start ? at : undefined;
    if (damaged) {
      append(diagnostics, checkModel(draft, LOCAL_RULES).filter((x) => x.loc.file === root.path && x.loc.start >= damaged.loc.start && x.loc.start <= damaged.loc.end));
      continue;
    }
    let found = checkModel(draft);
    const own = resolver.diagnostics.filter((x) => x.loc.file === root.path && x.loc.start >= d.start && x.loc.start <= d.end);
    // "Unused" warnings are noise next to the error that disconnected the graph.
    if (hasErrors([...found, ...own])) found = found.filter((x) => x.code !== 'BLIP2030' && x.code !== 'BLIP2031');
    append(diagnostics, found);
    if (!hasErrors([...found, ...own])) program.models.push(toIrModel(draft));
  }
  append(diagnostics, resolver.diagnostics);
  const all = sortDiagnostics(dedupe(diagnostics.filter((x) => !isEcho(x))));
  if (hasErrors(all)) return { diagnostics: all, sources };
  for (const e of validateIr(program))
    all.push(diagnostic('BLIP3099', program.models[0]?.loc ?? { file, line: 1, column: 1, start: 0, end: 0 }, `internal: the IR does not match src/ir/schema/ir.schema.json at ${e.instancePath || '/'}: ${e.message}`));
  return hasErrors(all) ? { diagnostics: all, sources } : { program, diagnostics: all, sources };
}
