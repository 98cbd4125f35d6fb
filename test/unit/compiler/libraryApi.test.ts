// The package's compile(): the options `blip compile` has (--target, --quantize) reach the compiler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, sep } from 'node:path';
import { compile, CompileError, graphsDir, shippedGraph, shippedGraphPath } from '../../../src/index.js';
import { resolve } from 'node:path';
import { FIXTURES, tmp } from './harness.js';

const GRAPH = 'graphs/blip-caption.blip';
const weights = join(FIXTURES, 'blip-caption-a', 'checkpoint');

test('compile() takes target and quantize, and refuses values it does not know', async () => {
  const root = tmp('api-');
  try {
    const r = await compile(GRAPH, { weights, out: join(root, 'cpu'), target: 'cpu', quantize: 'int8' });
    assert.equal(r.manifest.target, 'cpu');
    assert.equal(r.manifest.quantize, 'int8');
    const decoder = readFileSync(join(root, 'cpu', 'decoder.onnx')).toString('latin1');
    for (const op of ['MultiHeadAttention', 'BiasGelu', 'MatMulNBits']) assert.ok(decoder.includes(op), `decoder.onnx has no ${op}`);
    const half = await compile(GRAPH, { weights, out: join(root, 'half'), target: 'cpu', dtype: 'fp16' });
    assert.deepEqual(half.warnings.filter((w) => w.startsWith('float16 for the CPU target saves disk only')).length, 1, half.warnings.join('\n'));
    assert.deepEqual(r.warnings.filter((w) => w.startsWith('float16')), []);
    const plain = await compile(GRAPH, { weights, out: join(root, 'plain') });
    assert.equal(plain.manifest.target, undefined);
    assert.ok(!readFileSync(join(root, 'plain', 'decoder.onnx')).toString('latin1').includes('MultiHeadAttention'));
    await assert.rejects(compile(GRAPH, { weights, out: join(root, 'x'), target: 'tpu' as never }), (e) => e instanceof CompileError && /unknown target 'tpu' \(expected plain, cpu, cuda, webgpu\)/.test(e.message));
    await assert.rejects(compile(GRAPH, { weights, out: join(root, 'y'), quantize: 'int2' as never }), (e) => e instanceof CompileError && /unknown quantize 'int2'/.test(e.message));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('shippedGraph() names the shipped .blip file for a checkpoint, which compile() then takes', async () => {
  assert.equal(shippedGraph(weights), resolve('graphs/blip-caption.blip'));
  assert.equal(shippedGraph(join(FIXTURES, 'instructblip-t5-a', 'checkpoint')), resolve('graphs/instructblip-t5.blip'));
  assert.equal(shippedGraph(join(FIXTURES, 'blip2-llama-a', 'checkpoint')), resolve('graphs/examples/blip2-llama.blip'));
  const out = tmp('blip-shipped-');
  try {
    const r = await compile(shippedGraph(weights)!, { weights, out });
    assert.equal(r.manifest.model, 'blip_caption');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  assert.throws(() => shippedGraph(join(FIXTURES, 'nope')), (e: Error & { code?: string }) => e.code === 'BLIP4001' && /does not exist/.test(e.message));
  assert.throws(() => shippedGraph(42 as unknown as string), (e: Error & { code?: string }) => e.code === 'BLIP4015' && /takes the checkpoint folder's path as a string, found number/.test(e.message));
  await assert.rejects(compile(undefined as unknown as string, { weights, out: tmp('blip-shipped-') }), /found undefined \(shippedGraph\(\) gives undefined/);
});

test("compile() names an option of the wrong type or an empty string, and what it takes (BLIP4015)", async () => {
  const untyped = compile as unknown as (g: unknown, o: unknown) => Promise<unknown>;
  const root = tmp('api-bad-');
  try {
    const out = join(root, 'out');
    const cases: Array<[string, object, RegExp]> = [
      ['GRAPH', { weights, out, onProgress: 'x' }, /^compile option onProgress must be a function \(done, total, key\), found the string "x"$/],
      ['GRAPH', { weights, out, signal: 'x' }, /^compile option signal must be an AbortSignal \(AbortController\.signal\), found the string "x"$/],
      ['GRAPH', { weights, out, signal: {} }, /^compile option signal must be an AbortSignal .*, found an empty object$/],
      ['GRAPH', { weights, out, model: 42 }, /^compile option model must be the name of a model the \.blip file declares, found 42$/],
      ['GRAPH', { weights, out: '' }, /^compile option out must be the compiled model's directory \(a non-empty path\), found the string ""$/],
      ['GRAPH', { weights: '', out }, /^compile option weights must be the checkpoint directory \(a non-empty path\), found the string ""$/],
      ['GRAPH', { weights, out, target: 7 }, /^unknown target 7 \(expected plain, cpu, cuda, webgpu\)$/],
      ['', { weights, out }, /^compile\(\) takes the \.blip file's path as a string, found an empty string$/],
    ];
    for (const [graph, opts, message] of cases) {
      await assert.rejects(untyped(graph === 'GRAPH' ? GRAPH : graph, opts), (e: Error & { code?: string }) => (assert.equal(e.code, 'BLIP4015', e.message), assert.match(e.message, message), true), JSON.stringify(opts));
    }
    assert.deepEqual(readdirSync(root), [], 'nothing written');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('shippedGraphPath(name) is the path of each shipped graph inside the package, by its name below graphs/', () => {
  assert.equal(graphsDir, resolve('graphs'));
  const files = (readdirSync('graphs', { recursive: true }) as string[]).filter((f) => f.endsWith('.blip'));
  assert.ok(files.length >= 20 && files.includes(join('pinned', 'blip2-opt-2.7b.blip')), files.join(' '));
  for (const f of files) {
    const name = f.split(sep).join('/').slice(0, -'.blip'.length);
    const path = shippedGraphPath(name);
    assert.equal(path, resolve('graphs', f));
    assert.ok(statSync(path).isFile(), path);
    // as written in the docs and the repository too: with .blip, from graphs/
    assert.equal(shippedGraphPath(`${name}.blip`), path);
    assert.equal(shippedGraphPath(`graphs/${name}.blip`), path);
  }
});

test('shippedGraphPath() refuses a name blip-graph ships no graph by, naming those it does (BLIP4015)', () => {
  const says = (re: RegExp) => (e: unknown) => e instanceof CompileError && e.code === 'BLIP4015' && re.test(e.message) && !e.message.includes('\n');
  assert.throws(() => shippedGraphPath('blip-captoin'), says(/^blip-graph ships no graph named 'blip-captoin'; did you mean 'blip-caption'\? \(the shipped graphs: blip-caption, blip-itm, .*pinned\/blip2-opt-2\.7b, .*; for a \.blip file of your own, pass its path to compile\(\)\)$/));
  // nothing outside graphs/, however it is named
  for (const name of ['../package.json', '../graphs/blip-caption', '/etc/passwd', 'pinned', '']) assert.throws(() => shippedGraphPath(name), says(/^blip-graph ships no graph named /));
  assert.throws(() => shippedGraphPath(42 as never), says(/^shippedGraphPath\(\) takes a shipped graph's name as a string \(such as 'blip-caption'\), found number$/));
});

test('shippedGraph() reads config.json alone: a folder with no weights yet has its graph', () => {
  const dir = tmp('blip-config-only-');
  try {
    copyFileSync(join(weights, 'config.json'), join(dir, 'config.json'));
    assert.equal(shippedGraph(dir), resolve('graphs/blip-caption.blip'));
    writeFileSync(join(dir, 'config.json'), '{ not json');
    assert.throws(() => shippedGraph(dir), (e: Error & { code?: string }) => e.code === 'BLIP4001' && /is not valid JSON/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the package's declarations type-check in a strict consumer without skipLibCheck (no internal types leak)", () => {
  const root = tmp('blip-dts-');
  try {
    const tsc = join(process.cwd(), 'node_modules', '.bin', 'tsc');
    const emit = spawnSync(
      tsc,
      ['src/index.ts', '--declaration', '--emitDeclarationOnly', '--outDir', join(root, 'pkg'), '--rootDir', '.', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--strict', '--skipLibCheck', '--esModuleInterop', '--resolveJsonModule', '--types', 'node'],
      { encoding: 'utf8' },
    );
    assert.equal(emit.status, 0, emit.stdout + emit.stderr);
    symlinkSync(join(process.cwd(), 'node_modules'), join(root, 'pkg', 'node_modules'));
    writeFileSync(
      join(root, 'consumer.ts'),
      `import { compile, load, startServer, type BlipError, type CompileOptions, type CompileResult, type Provider, type Device, type GenerateOptions, type ItmOptions, type LoadOptions, type ServeOptions } from './pkg/src/index.js';
export async function main(): Promise<void> {
  const r: CompileResult = await compile('g.blip', { weights: 'w', out: 'o', target: 'cpu' });
  const fired: number | undefined = r.rewrites['decoder']?.['MultiHeadAttention'];
  const device: Device = 'cpu';
  const m = await load('o', { device, threads: 2 });
  const images: readonly string[] = ['cat.jpg'];
  const prompts: readonly string[] = ['a picture of'];
  const opts: GenerateOptions = { prompt: prompts, stop: ['.'] as const, seed: [1] as const };
  const [first] = await m.generate(images, opts);
  const p: Provider | undefined = m.providers.decoder;
  await m.itm(images, prompts);
  console.log(fired, first?.text, p);
}
export const codeOf = (e: BlipError): \`BLIP\${number}\` => e.code;
// a value that may be absent (a CLI flag not given) passed straight through, to every option a
// user passes in: \`satisfies Record<keyof X, unknown>\` makes each list name every option there is
declare function maybe<const T>(v: T): T | undefined;
export async function passThrough(): Promise<void> {
  await compile('g.blip', { weights: 'w', out: 'o', dtype: maybe('fp16'), model: maybe('m'), target: maybe('cpu'), quantize: maybe('int8'), onProgress: maybe(() => {}), signal: maybe(new AbortController().signal) } satisfies Record<keyof CompileOptions, unknown>);
  const loadOpts = { device: maybe('cpu'), threads: maybe(2), deviceId: maybe(0), kvOnDevice: maybe(true), staged: maybe(true), greedyLoop: maybe(true), imageBackend: maybe('pil') } satisfies Record<keyof LoadOptions, unknown>;
  const m = await load('o', loadOpts);
  const generateOpts = {
    prompt: maybe('a'), maxNewTokens: maybe(3), maxLength: maybe(9), minNewTokens: maybe(1), minLength: maybe(1), numBeams: maybe(2), lengthPenalty: maybe(1), earlyStopping: maybe('never'),
    repetitionPenalty: maybe(1), noRepeatNgramSize: maybe(0), doSample: maybe(true), topP: maybe(1), topK: maybe(5), temperature: maybe(1), seed: maybe(1), numReturnSequences: maybe(1),
    stop: maybe('.'), logprobs: maybe(true), topLogprobs: maybe(1), batchSize: maybe(8), onToken: maybe(() => {}), signal: maybe(new AbortController().signal),
  } satisfies Record<keyof GenerateOptions, unknown>;
  await m.generate(['cat.jpg'], generateOpts);
  const itmOpts = { batchSize: maybe(4), maxTextTokens: maybe(35), signal: maybe(new AbortController().signal) } satisfies Record<keyof ItmOptions, unknown>;
  await m.itm(['cat.jpg'], ['a cat'], itmOpts);
  await m.embedTexts(['a cat'], itmOpts);
  await m.embedImages(['cat.jpg'], { batchSize: itmOpts.batchSize, signal: itmOpts.signal });
  // @ts-expect-error embedImages takes batchSize and signal alone: it refuses maxTextTokens (no text to cut), undefined too
  await m.embedImages(['cat.jpg'], { batchSize: itmOpts.batchSize, maxTextTokens: itmOpts.maxTextTokens });
  const s = await startServer({
    models: [{ id: 'a', dir: 'o' }], host: maybe('::1'), port: maybe(0), device: maybe('cpu'), threads: maybe(2), deviceId: maybe(0), imageBackend: maybe('pil'), maxBatch: maybe(8), maxQueue: maybe(64),
    timeoutMs: maybe(1000), workers: maybe(1), maxBodyBytes: maybe(1), maxImagePixels: maybe(1), maxTextChars: maybe(1), allowFiles: maybe('.'), maxN: maybe(1), maxInputs: maybe(1),
    backendModule: maybe('b.js'), backendOptions: maybe({}), log: maybe(() => {}),
  } satisfies Record<keyof ServeOptions, unknown>);
  await s.close();
}
`,
    );
    writeFileSync(
      join(root, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [join(process.cwd(), 'node_modules', '@types')] }, files: ['consumer.ts'] }),
    );
    const check = spawnSync(tsc, ['-p', root], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    // a device name that is none is a type error for the package's callers
    writeFileSync(join(root, 'consumer.ts'), `import { load } from './pkg/src/index.js';\nexport const m = load('o', { device: 'gpu' });\n`);
    const wrong = spawnSync(tsc, ['-p', root], { encoding: 'utf8' });
    assert.match(wrong.stdout, /consumer\.ts.*error TS2322: Type '"gpu"' is not assignable/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("compile() returns the .blip file's check warnings with the compile's, one line each with their place", async () => {
  const root = tmp('api-warn-');
  try {
    const graph = join(root, 'caption.blip');
    // a length bounded both ways in one block: BLIP2043 at the unused max_length
    writeFileSync(graph, readFileSync(GRAPH, 'utf8').replace('generation { max_new_tokens: 20 }', 'generation { max_new_tokens: 20, max_length: 25 }'));
    const r = await compile(graph, { weights, out: join(root, 'out') });
    const checked = r.warnings.filter((w) => w.includes('BLIP2043'));
    assert.equal(checked.length, 1, r.warnings.join('\n'));
    assert.match(checked[0]!, new RegExp(`^${graph.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:13:\\d+ BLIP2043: `));
    assert.doesNotMatch(checked[0]!, /\n/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
