// runtime/session + runtime/providers: device names, provider probing and fallbacks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { candidates, gpuNodeVisible, missingVulkanDrivers, parseDevice, providerFailure, providerStatus, vulkanDrivers } from '../../../runtime/providers.js';
import { describeDevices, openSession } from '../../../runtime/session.js';
import { DeviceError } from '../../../runtime/errors.js';

const { onnx } = onnxProto;

/** y = x + x, float32 (N). */
function tinyModel(dir: string): string {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'tiny',
      node: [{ opType: 'Add', input: ['x', 'x'], output: ['y'] }],
      input: [{ name: 'x', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'n' }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'n' }] } } } }],
    },
  });
  const path = join(dir, 'tiny.onnx');
  writeFileSync(path, onnx.ModelProto.encode(model).finish());
  return path;
}

const installed = (p: 'cuda' | 'tensorrt' | 'webgpu') => providerStatus(p).installed;

test('device names: the five accepted, anything else is BLIP5040 naming the choices', () => {
  for (const d of ['cpu', 'cuda', 'tensorrt', 'webgpu', 'auto', ' CPU ']) assert.equal(parseDevice(d), d.trim().toLowerCase());
  assert.throws(() => parseDevice('tpu'), (e: unknown) => e instanceof DeviceError && e.code === 'BLIP5040' && /cpu, cuda, tensorrt, webgpu, auto/.test(e.message));
});

test('cpu session runs; threads are validated; a missing model is BLIP5043', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-sess-'));
  try {
    const path = tinyModel(dir);
    const s = await openSession(path, { device: 'cpu', threads: 1 });
    assert.equal(s.provider, 'cpu');
    const out = await s.session.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2.5]), [2]) });
    assert.deepEqual(Array.from(out.y.data as Float32Array), [2, 5]);
    await assert.rejects(openSession(path, { threads: 0 }), (e: unknown) => e instanceof DeviceError && e.code === 'BLIP5043');
    await assert.rejects(openSession(join(dir, 'nope.onnx')), (e: unknown) => e instanceof DeviceError && /no such file/.test(e.message));
    writeFileSync(join(dir, 'bad.onnx'), 'not a model');
    await assert.rejects(openSession(join(dir, 'bad.onnx')), (e: unknown) => e instanceof DeviceError && e.code === 'BLIP5043' && !e.message.includes('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cuda / tensorrt without their provider libraries: BLIP5041 saying how to install them', { skip: installed('cuda') && 'CUDA provider libraries are installed here' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-sess-'));
  try {
    const path = tinyModel(dir);
    for (const d of ['cuda', 'tensorrt']) {
      await assert.rejects(openSession(path, { device: d }), (e: unknown) => {
        assert.ok(e instanceof DeviceError, String(e));
        assert.equal(e.code, 'BLIP5041');
        assert.match(e.message, /ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/);
        assert.match(e.message, /CUDA 12/);
        assert.ok(!e.message.includes('\n'));
        return true;
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('auto falls back to cpu silently, recording why the others were passed over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-sess-'));
  try {
    const s = await openSession(tinyModel(dir), { device: 'auto' });
    assert.ok(['cpu', 'cuda', 'webgpu'].includes(s.provider));
    assert.deepEqual(candidates('auto').slice(-1), ['cpu']);
    if (s.provider === 'cpu') for (const f of s.fallbacks) assert.ok(f.reason.length > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('webgpu: a session, or BLIP5042 naming the Vulkan loader or driver to install', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-sess-'));
  try {
    const path = tinyModel(dir);
    try {
      const s = await openSession(path, { device: 'webgpu' });
      assert.equal(s.provider, 'webgpu');
    } catch (e) {
      assert.ok(e instanceof DeviceError, String(e));
      assert.equal(e.code, 'BLIP5042');
      assert.match(e.message, /libvulkan1|Vulkan driver/);
      assert.ok(!e.message.includes('\n'));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('provider failure messages: library load vs driver problems', () => {
  assert.equal(providerFailure('cuda', new Error('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library')).code, 'BLIP5041');
  assert.equal(providerFailure('cuda', new Error('CUDA failure 100: no CUDA-capable device is detected')).code, 'BLIP5042');
  assert.match(providerFailure('webgpu', new Error("Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file\nmore")).message, /libvulkan1/);
  // a model in a folder named like the driver is a model failure, not an adapter one
  const truncated = new Error('Load model from /models/vulkan-build/decoder.onnx failed:Protobuf parsing failed.');
  assert.equal(providerFailure('webgpu', truncated, '/models/vulkan-build/decoder.onnx').code, 'BLIP5043');
  assert.equal(providerFailure('webgpu', truncated).code, 'BLIP5043');
  assert.equal(providerStatus('cuda', '/nonexistent', 'linux-x64').installed, false);
  assert.match(providerStatus('cuda', '/nonexistent', 'darwin-arm64').reason!, /Linux x64 and Windows x64/);
  assert.equal(describeDevices().find((d) => d.provider === 'cpu')!.installed, true);
});

test('webgpu failures: no loader, no driver, or drivers Dawn rejected (lavapipe before Mesa 24) each say what to install', { skip: process.platform !== 'linux' && 'Linux only (Vulkan)' }, () => {
  const noAdapter = new Error('/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 x was false. Failed to get a WebGPU adapter: No supported adapters');
  const saved = { files: process.env.VK_DRIVER_FILES, icd: process.env.VK_ICD_FILENAMES };
  // driver manifests where the variables name them (they are read only for their names here)
  const icd = mkdtempSync(join(tmpdir(), 'blip-icd-'));
  for (const f of ['lvp_icd.json', 'nvidia_icd.json']) writeFileSync(join(icd, f), '{}');
  try {
    process.env.VK_DRIVER_FILES = join(icd, 'lvp_icd.json');
    assert.deepEqual(vulkanDrivers(), ['lvp_icd.json']);
    const e = providerFailure('webgpu', noAdapter);
    assert.equal(e.code, 'BLIP5042');
    assert.match(e.message, /No supported adapters/);
    assert.match(e.message, /lvp_icd\.json/);
    assert.match(e.message, /Mesa 24/);
    assert.ok(!e.message.includes('\n'));
  } finally {
    if (saved.files === undefined) delete process.env.VK_DRIVER_FILES;
    else process.env.VK_DRIVER_FILES = saved.files;
  }
  try {
    process.env.VK_DRIVER_FILES = join(icd, 'nvidia_icd.json');
    const e = providerFailure('webgpu', noAdapter);
    assert.match(e.message, /nvidia_icd\.json/);
    assert.match(e.message, /glvnd: install libglvnd0 /);
    assert.ok(!/Mesa 24/.test(e.message));
  } finally {
    if (saved.files === undefined) delete process.env.VK_DRIVER_FILES;
    else process.env.VK_DRIVER_FILES = saved.files;
  }
  assert.deepEqual(vulkanDrivers({ VK_ICD_FILENAMES: `${join(icd, 'nvidia_icd.json')}:${join(icd, 'lvp_icd.json')}` }), ['nvidia_icd.json', 'lvp_icd.json']);
  assert.deepEqual(vulkanDrivers({ VK_DRIVER_FILES: icd }).sort(), ['lvp_icd.json', 'nvidia_icd.json'], 'a folder of manifests');
  // a named manifest that does not exist is said to be missing, not listed as a driver found
  assert.deepEqual(vulkanDrivers({ VK_DRIVER_FILES: '/nonexistent' }), []);
  assert.deepEqual(missingVulkanDrivers({ VK_DRIVER_FILES: `/nonexistent:${join(icd, 'lvp_icd.json')}` }), ['/nonexistent']);
  try {
    process.env.VK_DRIVER_FILES = '/nonexistent';
    const e = providerFailure('webgpu', noAdapter);
    assert.equal(e.code, 'BLIP5042');
    assert.match(e.message, /VK_DRIVER_FILES names a driver manifest that does not exist: \/nonexistent; no Vulkan driver is left to load/);
    assert.doesNotMatch(e.message, /drivers found/);
    process.env.VK_DRIVER_FILES = `/nonexistent:${join(icd, 'lvp_icd.json')}`;
    assert.match(providerFailure('webgpu', noAdapter).message, /does not exist: \/nonexistent; Vulkan drivers found: lvp_icd\.json;/);
  } finally {
    if (saved.files === undefined) delete process.env.VK_DRIVER_FILES;
    else process.env.VK_DRIVER_FILES = saved.files;
    rmSync(icd, { recursive: true, force: true });
  }
  assert.match(providerFailure('webgpu', new Error("Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file")).message, /install libvulkan1/);
});

test('auto tries WebGPU on Linux only when a GPU device node is visible (else its adapter would be a CPU driver)', () => {
  const dev = mkdtempSync(join(tmpdir(), 'blip-dev-'));
  try {
    assert.equal(gpuNodeVisible(dev), false);
    mkdirSync(join(dev, 'dri'));
    writeFileSync(join(dev, 'dri', 'card0'), '');
    assert.equal(gpuNodeVisible(dev), false, 'a display node alone is not a render node');
    writeFileSync(join(dev, 'dri', 'renderD128'), '');
    assert.equal(gpuNodeVisible(dev), true);
    rmSync(join(dev, 'dri'), { recursive: true });
    writeFileSync(join(dev, 'nvidia0'), '');
    assert.equal(gpuNodeVisible(dev), true);
  } finally {
    rmSync(dev, { recursive: true, force: true });
  }
  assert.deepEqual(candidates('webgpu'), ['webgpu']);
  if (process.platform === 'linux') assert.equal(candidates('auto').includes('webgpu'), gpuNodeVisible());
});

test("ORT's source-location preamble is dropped from messages", async () => {
  const { ortMessage } = await import('../../../runtime/providers.js');
  assert.equal(
    ortMessage(new Error('/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::X adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters')),
    'Failed to get a WebGPU adapter: No supported adapters',
  );
  assert.equal(ortMessage(new Error('plain message\nsecond line')), 'plain message');
});
