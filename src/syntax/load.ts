// The front end's entry point: a `.blip` file (and the files it imports) -> a checked IrProgram
// and every diagnostic found on the way. Never throws for anything wrong with the input.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { IrProgram, SourceLoc } from '../ir/types.js';
import { validateIr } from '../ir/validate.js';
import { diagnostic, hasErrors, sortDiagnostics, type Diagnostic } from '../diagnostics/Diagnostic.js';
import { checkModel } from '../checks/index.js';
import { MAX_FILE_CHARS, parse } from './parse.js';
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
  return diagnostic('BLIP2001', from ?? top, `cannot read ${from ? 'imported ' : ''}file '${p}': expected a readable .blip file, found ${readError(e)}`);
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

function readError(e: unknown): string {
  const code = (e as { code?: string })?.code;
  return code === 'ENOENT'
    ? 'no such file'
    : code === 'EISDIR'
      ? 'it is a directory'
      : code === 'EACCES'
        ? 'permission denied'
        : ((e as Error)?.message ?? String(e));
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

export function loadProgram(file: string, opts: LoadOptions = {}): LoadResult {
  const readFile = opts.readFile ?? readBlipFile;
  const sources = new Map<string, string>();
  const diagnostics: Diagnostic[] = [];
  const files: ParsedFile[] = [];
  const byRealPath = new Map<string, ParsedFile>();

  const load = (p: string, text: string | undefined, from?: SourceLoc): ParsedFile | undefined => {
    const key = path.resolve(p);
    if (byRealPath.has(key)) return byRealPath.get(key);
    if (text === undefined) {
      try {
        text = readFile(p);
      } catch (e) {
        diagnostics.push(readFailure(p, e, from));
        return undefined;
      }
    }
    sources.set(p, text);
    const parsed = parse(text, p);
    diagnostics.push(...parsed.diagnostics);
    const f: ParsedFile = { path: p, src: parsed.source, ast: parsed.ast };
    byRealPath.set(key, f);
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

  // A model with a syntax error is not checked further: what recovery dropped would show up as
  // unknown or unused names. Other models still are.
  // A model recovery gave up on before its '}' reaches up to the next declaration, its first token
  // included: the error lies after the span it parsed, or at the token recovery took for a new
  // declaration ('input model: text' resynchronises at 'model').
  const broken: SourceLoc[] = [];
  for (const f of files)
    f.ast.decls.forEach((d, i) => {
      // (a model closed by its '}' reaches no further: a stray token after it is not its error)
      const closed = f.src.text[d.end - 1] === '}';
      const reach = closed ? d.end : i + 1 < f.ast.decls.length ? f.ast.decls[i + 1]!.start : f.src.text.length;
      if (d.type === 'model' && diagnostics.some((x) => x.code < 'BLIP2' && x.loc.file === f.path && x.loc.start >= d.start && x.loc.start <= reach)) broken.push(f.src.loc(d.start, reach));
    });
  // A syntax error outside every model (in an import, between declarations) may have dropped an
  // import: a base model not found in that file is then its echo.
  const inModel = (x: Diagnostic) => broken.some((b) => b.file === x.loc.file && x.loc.start >= b.start && x.loc.start <= b.end);
  const outsideModels = new Set(diagnostics.filter((x) => x.code < 'BLIP2' && !inModel(x)).map((x) => x.loc.file));
  const inBroken = (x: Diagnostic) => x.code >= 'BLIP2' && (inModel(x) || (x.code === 'BLIP2003' && outsideModels.has(x.loc.file)));

  const resolver = new Resolver(files);
  const program: IrProgram = { file, models: [] };
  for (const d of root.ast.decls) {
    if (d.type !== 'model' || !d.name) continue;
    const draft = resolver.resolve(d.name.text);
    if (!draft || broken.some((b) => b.file === root.path && b.start === d.start)) continue;
    let found = checkModel(draft);
    const own = resolver.diagnostics.filter((x) => x.loc.file === root.path && x.loc.start >= d.start && x.loc.start <= d.end);
    // "Unused" warnings are noise next to the error that disconnected the graph.
    if (hasErrors([...found, ...own])) found = found.filter((x) => x.code !== 'BLIP2030' && x.code !== 'BLIP2031');
    diagnostics.push(...found);
    if (!hasErrors([...found, ...own])) program.models.push(toIrModel(draft));
  }
  diagnostics.push(...resolver.diagnostics);
  const all = sortDiagnostics(dedupe(diagnostics.filter((x) => !inBroken(x))));
  if (hasErrors(all)) return { diagnostics: all, sources };
  for (const e of validateIr(program))
    all.push(diagnostic('BLIP3099', program.models[0]?.loc ?? { file, line: 1, column: 1, start: 0, end: 0 }, `internal: the IR does not match src/ir/schema/ir.schema.json at ${e.instancePath || '/'}: ${e.message}`));
  return hasErrors(all) ? { diagnostics: all, sources } : { program, diagnostics: all, sources };
}
