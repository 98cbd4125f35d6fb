// Shared by the server tests: tiny compiled models, images as data: URLs, a started server.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProgram } from '../../../src/syntax/load.js';
import { compile } from '../../../src/lower/compile.js';
import { fixturePath, repoRoot } from '../runtime/fixtures.js';
import { startServer, type BlipServer, type ServeOptions } from '../../../runtime/server/index.js';

const compiled = new Map<string, string>();

/** Compile a test fixture with a shipped graph (once per process); returns the output folder. */
export async function compiledFixture(graph: 'blip-caption' | 'blip-itm' | 'blip2-opt' | 'blip-vqa' | 'blip2-t5' | 'instructblip-t5' | 'instructblip-vicuna', fixture: string): Promise<string> {
  const k = `${graph}/${fixture}`;
  const have = compiled.get(k);
  if (have) return have;
  const graphFile = join(repoRoot(), 'graphs', `${graph}.blip`);
  const r = loadProgram(graphFile);
  if (!r.program) throw new Error(`${graphFile} does not load`);
  const out = join(mkdtempSync(join(tmpdir(), 'blip-serve-')), fixture);
  await compile({ model: r.program.models[0], graphFile, graphText: readFileSync(graphFile, 'utf8'), weights: fixturePath(fixture, 'checkpoint'), out });
  compiled.set(k, out);
  return out;
}

export function imageBytes(name = 'photo_64x48.jpg'): Buffer {
  return readFileSync(fixturePath('images', name));
}

export function dataUrl(name = 'photo_64x48.jpg'): string {
  const mime = name.endsWith('.png') ? 'image/png' : name.endsWith('.webp') ? 'image/webp' : 'image/jpeg';
  return `data:${mime};base64,${imageBytes(name).toString('base64')}`;
}

/** The fake inference backend's module (its .ts when the tests run from source). */
export function fakeBackend(): string {
  const ts = new URL('./fake-backend.ts', import.meta.url);
  return import.meta.url.endsWith('.ts') && existsSync(ts) ? ts.href : new URL('./fake-backend.js', import.meta.url).href;
}

export function serve(o: Partial<ServeOptions> & Pick<ServeOptions, 'models'>): Promise<BlipServer> {
  return startServer({ host: '127.0.0.1', port: 0, threads: 1, ...o });
}

/** Poll until `f` is true (no timing assumption: the test runner's timeout is the only bound). */
export async function until(f: () => boolean | Promise<boolean>, what: string, limitMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function health(url: string): Promise<{ status: string; queue_depth: number; in_flight: number }> {
  const r = await fetch(`${url}/health`);
  return (await r.json()) as { status: string; queue_depth: number; in_flight: number };
}

export function chatBody(model: string, extra: Record<string, unknown> = {}, text?: string, image = dataUrl()): Record<string, unknown> {
  const content: unknown[] = [{ type: 'image_url', image_url: { url: image } }];
  if (text !== undefined) content.push({ type: 'text', text });
  return { model, messages: [{ role: 'user', content }], ...extra };
}

/** A POST whose client can go away: `abort()` closes the connection; `response` then rejects. */
export function postAbortable(url: string, body: unknown): { response: Promise<Response>; abort(): void } {
  const ac = new AbortController();
  const response = fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: ac.signal });
  response.catch(() => {}); // (awaited by the test, after it aborts)
  return { response, abort: () => ac.abort() };
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, headers: r.headers, json };
}
