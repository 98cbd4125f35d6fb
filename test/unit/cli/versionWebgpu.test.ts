// blip version --verbose on WebGPU: "installed" means the provider is in onnxruntime-node, not that
// an adapter exists (only a session finds out), so the line says it did not look.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { providerStatus } from '../../../runtime/providers.js';
import { runCliBatch } from '../cliHarness.js';

test('blip version --verbose: WebGPU installed says the adapter was not checked, and on Linux which Vulkan drivers there are', { skip: !providerStatus('webgpu').installed && 'WebGPU provider not installed here' }, () => {
  const [r] = runCliBatch([['version', '--verbose']]);
  assert.equal(r.code, 0, r.err);
  const line = r.out.split('\n').find((l) => l.startsWith('provider webgpu:'));
  assert.match(line ?? '', process.platform === 'linux' ? /^provider webgpu: installed \(adapter not checked; Vulkan drivers: .+\)$/ : /^provider webgpu: installed \(adapter not checked\)$/);
});
