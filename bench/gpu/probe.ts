// Which WebGPU adapter onnxruntime-node picks here: one Relu on the WebGPU provider with onnxruntime's
// verbose log on, the log's adapter / device / Vulkan lines kept. Prints one JSON line:
//   {"ok": true|false, "error"?: "...", "ort": "1.30.0", "vulkan_loader": "/usr/lib/.../libvulkan.so.1", "log": [...]}
// The verbose log goes to this process's stderr from native code, so run.sh runs this twice: once
// with stderr to a file (bench/gpu/run.sh greps it), once for this JSON.
//
//   node dist/bench/gpu/probe.js [--device webgpu]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { findVulkanLoader, ortMessage } from '../../runtime/providers.js';

async function main(): Promise<void> {
  const device = process.argv.includes('--device') ? process.argv[process.argv.indexOf('--device') + 1] : 'webgpu';
  const verbose = process.argv.includes('--verbose');
  const { onnx } = onnxProto;
  const f = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 2 }] } } } });
  const dir = mkdtempSync(join(tmpdir(), 'blip-gpu-probe-'));
  const path = join(dir, 'probe.onnx');
  writeFileSync(
    path,
    onnx.ModelProto.encode(
      onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'probe', node: [{ opType: 'Relu', input: ['x'], output: ['y'] }], input: [f('x')], output: [f('y')] } }),
    ).finish(),
  );
  const out: Record<string, unknown> = { device, ort: ort.env.versions?.common ?? null, vulkan_loader: findVulkanLoader() ?? null };
  try {
    if (verbose) ort.env.logLevel = 'verbose';
    const s = await ort.InferenceSession.create(path, { executionProviders: [device] as ort.InferenceSession.SessionOptions['executionProviders'], logSeverityLevel: verbose ? 0 : 3, logVerbosityLevel: verbose ? 1 : 0 });
    const y = await s.run({ x: new ort.Tensor('float32', Float32Array.from([-1, 2]), [2]) });
    out.ok = Array.from(y.y.data as Float32Array).join(',') === '0,2';
    await s.release();
  } catch (e) {
    out.ok = false;
    out.error = ortMessage(e);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
