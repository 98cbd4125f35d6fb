// runtime/providerGaps.ts, the table runtime/providers.ts buildMismatch refuses builds by, says
// which builds hold each operator a provider cannot run as the fusions do (their `emits` and
// `applies` over PIPELINES), and stays readable by the runtime without loading the fusions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FUSIONS, PIPELINES } from '../../../src/rewrite/index.js';
import { MatMulNBitsFusion } from '../../../src/rewrite/MatMulNBitsFusion.js';
import { PROVIDER_GAPS } from '../../../runtime/providerGaps.js';

const TARGETS = ['cpu', 'cuda', 'webgpu'] as const;
const FLOAT_TYPES = ['float32', 'float16'] as const;

/** target -> the float types whose builds hold `op`, by the fusions' declarations. */
function buildsWith(op: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const target of TARGETS) {
    const types = FLOAT_TYPES.filter((ft) => PIPELINES[target].some((f) => op in f.emits && f.applies(ft, { target })));
    if (types.length) out[target] = types;
  }
  return out;
}

test("each provider gap's builds are those whose fusions write its operator", () => {
  assert.ok(PROVIDER_GAPS.length > 0);
  for (const gap of PROVIDER_GAPS) {
    assert.ok(FUSIONS.some((f) => gap.op in f.emits), `${gap.op}: no fusion emits it`);
    assert.deepEqual(gap.builds, buildsWith(gap.op), `${gap.provider} ${gap.op}: builds (runtime/providerGaps.ts) against the fusions' emits and applies`);
  }
});

test('--quantize writes no operator of the table (a build does not record it: the table goes by target and float type)', () => {
  for (const gap of PROVIDER_GAPS) assert.ok(!(gap.op in MatMulNBitsFusion.emits), gap.op);
});

test('providerGaps.ts imports types only (runtime/providers.ts reads it without loading the compiler)', () => {
  const src = readFileSync('runtime/providerGaps.ts', 'utf8');
  for (const line of src.split('\n').filter((l) => /^\s*(import|export .* from)\b/.test(l))) assert.match(line, /^import type /, line);
});
