// GenerationOptions.signal: the loop looks at it before every model call (the prefill, each step,
// each in-model greedy chunk; beam search too) and throws its reason, releasing the state it held.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate, type GenerationOptions, type StepInput, type StepModel, type StepOutput } from '../../../runtime/generation/index.js';
import { ScriptedModel } from './scripted.js';

/** The scripted model, counting its calls (steps and in-model greedy runs) and the states not yet released; `onCall(n)` runs at the start of call n. */
class Counted implements StepModel<number[][]> {
  calls = 0;
  live = 0;
  readonly inner = new ScriptedModel({ vocab: 16, salt: 3, eos: [], eos_bonus: 0 });
  greedy?: StepModel<number[][]>['greedy'];
  constructor(
    private readonly onCall: (n: number) => void = () => undefined,
    inModel = false,
  ) {
    if (inModel) {
      // one scripted step per token asked for (argmax): what matters here is the count of calls
      this.greedy = async (tokens, state, steps) => {
        this.onCall(++this.calls);
        let h = state;
        let feed = tokens;
        const out: number[][] = [];
        for (let i = 0; i < steps; i++) {
          const o = await this.inner.step({ inputIds: BigInt64Array.from(feed, BigInt), batch: feed.length, seqLen: 1, attentionMask: new BigInt64Array(feed.length * (h[0].length + 1)).fill(1n), pastLength: h[0].length, prefill: false }, h);
          h = o.state;
          feed = feed.map((_, r) => o.logits.subarray(r * 16, (r + 1) * 16).indexOf(Math.max(...o.logits.subarray(r * 16, (r + 1) * 16))));
          out.push(feed);
        }
        this.live++;
        return { tokens: out, state: h };
      };
    }
  }
  async step(input: StepInput, state: number[][] | undefined): Promise<StepOutput<number[][]>> {
    this.onCall(++this.calls);
    const o = await this.inner.step(input, state);
    this.live++;
    return o;
  }
  reorder(state: number[][], rows: number[]): number[][] {
    return this.inner.reorder(state, rows);
  }
  dispose(): void {
    this.live--;
  }
}

const prompt = { inputIds: [[1, 2], [3, 4]] };
const run = (model: Counted, opts: GenerationOptions) => generate(model, prompt, { maxNewTokens: 30, ...opts });

test('aborted while decoding, the loop makes no further model call and rejects with the reason (greedy on the host, in the model, sampling, beam search)', async () => {
  for (const [name, opts, inModel] of [
    ['greedy', { greedyChunk: 0 }, false],
    ['greedy in the model, 4 tokens a call', { greedyChunk: 4 }, true],
    ['sampling', { doSample: true, seed: 1 }, false],
    ['beam search', { numBeams: 3 }, false],
    ['beam sampling', { numBeams: 3, doSample: true, seed: 1 }, false],
  ] as Array<[string, GenerationOptions, boolean]>) {
    const full = new Counted(undefined, inModel);
    await run(full, opts);
    const ac = new AbortController();
    const reason = new Error('cancelled by the caller');
    // aborted during the 3rd model call (beam search calls no onToken while it decodes)
    const model = new Counted((n) => n === 3 && ac.abort(reason), inModel);
    await assert.rejects(run(model, { ...opts, signal: ac.signal }), (e) => e === reason, name);
    assert.ok(full.calls > 5, `${name}: ${full.calls} calls uninterrupted`);
    assert.equal(model.calls, 3, `${name}: no call after the one it was aborted in`);
    assert.equal(model.live, 0, `${name}: the state held was released`);
    // the next call, with a signal of its own, is unaffected
    const next = new Counted(undefined, inModel);
    await run(next, { ...opts, signal: new AbortController().signal });
    assert.equal(next.calls, full.calls, name);
  }
});

test('a signal aborted before the call: it rejects with the reason and calls no model; abort() without a reason gives an AbortError', async () => {
  const reason = new Error('too late');
  const model = new Counted();
  await assert.rejects(run(model, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
  await assert.rejects(run(model, { numBeams: 2, signal: AbortSignal.abort() }), { name: 'AbortError' });
  assert.equal(model.calls, 0);
});
