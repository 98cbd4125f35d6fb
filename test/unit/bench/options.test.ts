// The command line of `npm run bench` (bench/options.ts). --repeat once set blip-graph's timed calls
// only where a case had no count of its own and never PyTorch's (fixed per case), while the bench told
// the user to "rerun with a larger --repeat".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BenchUsageError, parseBenchArgs, repeatsOf } from '../../../bench/options.js';

const CASES = ['blip-base-b1', 'blip-base-b8', 'blip2-opt-350m-b1', 'blip2-opt-2.7b-b1'];

test('--repeat sets the timed calls of both sides, whatever the case says', () => {
  const o = parseBenchArgs(['--cases', 'blip2-opt-2.7b-b1', '--repeat', '5'], CASES);
  assert.deepEqual(repeatsOf({ oursRepeat: 2, torchRepeat: 2 }, o.repeat), { ours: 5, torch: 5 });
  assert.deepEqual(repeatsOf({ torchRepeat: 1 }, o.repeat), { ours: 5, torch: 5 });
});

test("without --repeat each side makes the case's own count (blip-graph: 3 unless the case says)", () => {
  const o = parseBenchArgs([], CASES);
  assert.equal(o.repeat, undefined);
  assert.deepEqual(repeatsOf({ torchRepeat: 1 }, o.repeat), { ours: 3, torch: 1 });
  assert.deepEqual(repeatsOf({ oursRepeat: 2, torchRepeat: 2 }, o.repeat), { ours: 2, torch: 2 });
});

test('command-line mistakes are usage errors naming the flag or case', () => {
  for (const [argv, msg] of [
    [['--repeat', '0'], /--repeat must be a positive integer, got 0/],
    [['--repeat', '2.5'], /--repeat must be a positive integer, got 2.5/],
    [['--repeat'], /--repeat must be a positive integer, got nothing/],
    [['--cases', 'blip-base-b2'], /unknown case blip-base-b2 \(blip-base-b1, blip-base-b8, blip2-opt-350m-b1, blip2-opt-2.7b-b1, or all\)/],
    [['--fast'], /unknown option --fast/],
    [['--tokens', '1'], /--tokens must be an integer of at least 2 \(the decode is the tokens after the first\), got 1/],
    [['--tokens', 'x'], /--tokens must be an integer of at least 2 .*got x/],
    // (a NaN thread count reached onnxruntime and torch.set_num_threads; a bad target, the compiler)
    [['--threads', 'two'], /--threads must be a positive integer, got two/],
    [['--threads', '0'], /--threads must be a positive integer, got 0/],
    [['--paired', '-1'], /--paired must be an integer of at least 0 \(0: no paired rounds\), got -1/],
    [['--repetition-penalty', '0'], /--repetition-penalty must be a positive number, got 0/],
    [['--repetition-penalty', 'x'], /--repetition-penalty must be a positive number, got x/],
    [['--target', 'tpu'], /--target must be one of plain, cpu, cuda, webgpu, got tpu/],
  ] as const)
    assert.throws(() => parseBenchArgs([...argv], CASES), (e: unknown) => e instanceof BenchUsageError && msg.test(e.message), argv.join(' '));
  assert.deepEqual(parseBenchArgs(['--cases', 'all'], CASES).cases, CASES);
  assert.equal(parseBenchArgs(['--tokens', '2'], CASES).tokens, 2);
  assert.deepEqual(((o) => [o.threads, o.paired, o.repetitionPenalty, o.target])(parseBenchArgs(['--threads', '1', '--paired', '0', '--repetition-penalty', '1.5', '--target', 'webgpu'], CASES)), [1, 0, 1.5, 'webgpu']);
});
