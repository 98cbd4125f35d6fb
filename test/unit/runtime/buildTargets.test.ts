// Which `blip compile --target` builds run on which provider (runtime/providers.ts buildMismatch):
// float32 --target cpu / cuda builds fuse attention into onnxruntime operators the WebGPU provider
// cannot run, so --device webgpu refuses them at load with one line, and --device auto passes
// WebGPU over for them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { buildMismatch, candidates, type Build, type Provider } from '../../../runtime/providers.js';
import { openSession } from '../../../runtime/session.js';
import { load } from '../../../runtime/model.js';
import { DeviceError } from '../../../runtime/errors.js';
import { loadProgram } from '../../../src/syntax/load.js';
import { compile } from '../../../src/lower/compile.js';
import { fixturePath, repoRoot } from './fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'blip-targets-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('targets x providers: float32 --target cpu / cuda builds do not run on WebGPU; everything else runs everywhere', () => {
  const runs = (build: Build | undefined) => (['cpu', 'cuda', 'tensorrt', 'webgpu'] as Provider[]).filter((p) => !buildMismatch(build, p));
  assert.deepEqual(runs(undefined), ['cpu', 'cuda', 'tensorrt', 'webgpu']);
  assert.deepEqual(runs({ dtype: 'float32' }), ['cpu', 'cuda', 'tensorrt', 'webgpu'], 'plain');
  assert.deepEqual(runs({ target: 'webgpu', dtype: 'float32' }), ['cpu', 'cuda', 'tensorrt', 'webgpu']);
  assert.deepEqual(runs({ target: 'cpu', dtype: 'float32' }), ['cpu', 'cuda', 'tensorrt']);
  assert.deepEqual(runs({ target: 'cuda', dtype: 'float32' }), ['cpu', 'cuda', 'tensorrt']);
  // float16 graphs keep attention decomposed on every target
  assert.deepEqual(runs({ target: 'cpu', dtype: 'float16' }), ['cpu', 'cuda', 'tensorrt', 'webgpu']);
  assert.deepEqual(runs({ target: 'cuda', dtype: 'float16' }), ['cpu', 'cuda', 'tensorrt', 'webgpu']);
  assert.match(buildMismatch({ target: 'cpu', dtype: 'float32' }, 'webgpu')!, /--target cpu.*recompile it with --target webgpu, or without --target \(plain ONNX\)/);
  // auto, where a GPU is visible: WebGPU is passed over for such a build, and the CPU is still last
  assert.deepEqual(candidates('auto', { target: 'cpu', dtype: 'float32' }, true), ['cuda', 'cpu']);
  assert.deepEqual(candidates('auto', { target: 'webgpu', dtype: 'float32' }, true), ['cuda', 'webgpu', 'cpu']);
  assert.deepEqual(candidates('auto', undefined, false), ['cuda', 'cpu']);
  assert.deepEqual(candidates('webgpu', { target: 'cpu', dtype: 'float32' }, true), ['webgpu'], 'an explicit device is refused at load, not replaced');
});

test('openSession: --device webgpu refuses a float32 --target cuda build before creating a session (BLIP5042, one line)', async () => {
  const { onnx } = onnxProto;
  const f = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 2 }] } } } });
  const path = join(tmp, 'relu.onnx');
  writeFileSync(path, onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'g', node: [{ opType: 'Relu', input: ['x'], output: ['y'] }], input: [f('x')], output: [f('y')] } })).finish());
  await assert.rejects(openSession(path, { device: 'webgpu', build: { target: 'cuda', dtype: 'float32' } }), (e: unknown) => {
    assert.ok(e instanceof DeviceError, String(e));
    assert.equal(e.code, 'BLIP5042');
    assert.match(e.message, new RegExp(`^device webgpu: cannot run the model in ${tmp}: it was compiled with --target cuda`));
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  const cpu = await openSession(path, { device: 'auto', build: { target: 'cuda', dtype: 'float32' } });
  assert.notEqual(cpu.provider, 'webgpu');
  await cpu.session.release();
});

test('load(): a --target cpu build with device webgpu is one line at load, not a failure in every call', { skip: !existsSync(fixturePath('blip-caption-a', 'checkpoint')) && 'fixture blip-caption-a not present' }, async () => {
  const dir = join(tmp, 'caption-cpu');
  const graph = join(repoRoot(), 'graphs', 'blip-caption.blip');
  await compile({ model: loadProgram(graph).program!.models[0], graphFile: graph, graphText: readFileSync(graph, 'utf8'), weights: fixturePath('blip-caption-a', 'checkpoint'), out: dir, target: 'cpu' });
  await assert.rejects(load(dir, { device: 'webgpu' }), (e: unknown) => {
    assert.ok(e instanceof DeviceError, String(e));
    assert.equal(e.code, 'BLIP5042');
    assert.equal(e.message, `device webgpu: cannot run the model in ${dir}: ${buildMismatch({ target: 'cpu', dtype: 'float32' }, 'webgpu')}`);
    return true;
  });
});
