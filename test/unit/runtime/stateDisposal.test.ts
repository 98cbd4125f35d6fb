// The generation loop releases every model state it was handed (StepModel.dispose), however it
// ends: an onToken that throws (the documented way to stop, and how `blip serve` stops a batch), a
// failed step, reorder or in-model greedy run. On WebGPU a state holds the KV cache's device
// buffers, which stay allocated until close() when it is not released.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate, type GenerationOptions, type StepInput, type StepModel, type StepOutput } from '../../../runtime/generation/index.js';
import { ScriptedModel } from './scripted.js';

/** A state as the tracker hands it out: the scripted model's histories in a box of its own. */
interface Box {
  h: number[][];
}

type Failing = 'step' | 'reorder' | 'greedy';

/**
 * The scripted model, counting the states it hands out (step, greedy, reorder) and the ones
 * disposed. reorder()'s result takes over its input (StepModel.reorder), so the input is no longer
 * live. `fail`: the call of that kind (1-based) that throws, as a failed session.run does.
 */
class Tracked implements StepModel<Box> {
  readonly live = new Set<Box>();
  handed = 0;
  readonly problems: string[] = [];
  private readonly calls: Record<Failing, number> = { step: 0, reorder: 0, greedy: 0 };
  readonly inner = new ScriptedModel({ vocab: 16, salt: 7, eos: [], eos_bonus: 0 });
  greedy?: StepModel<Box>['greedy'];

  constructor(
    private readonly fail?: { kind: Failing; at: number },
    inModel = false,
  ) {
    if (inModel) this.greedy = (...a) => this.greedyRun(...a);
  }

  private hand(h: number[][]): Box {
    const b = { h };
    this.live.add(b);
    this.handed++;
    return b;
  }

  private use(b: Box, kind: Failing): void {
    if (!this.live.has(b)) this.problems.push(`${kind} was given a state already released or taken over`);
    if (++this.calls[kind] === this.fail?.at && this.fail.kind === kind) throw new Error(`${kind} ${this.fail.at} failed`);
  }

  async step(input: StepInput, state: Box | undefined): Promise<StepOutput<Box>> {
    if (state) this.use(state, 'step');
    else if (++this.calls.step === this.fail?.at && this.fail.kind === 'step') throw new Error('step 1 failed');
    const o = await this.inner.step(input, state?.h);
    return { ...o, state: this.hand(o.state) };
  }

  reorder(state: Box, rows: number[]): Box {
    this.use(state, 'reorder');
    this.live.delete(state);
    return this.hand(this.inner.reorder(state.h, rows));
  }

  dispose(state: Box): void {
    if (!this.live.delete(state)) this.problems.push('a state was disposed twice, or after reorder() took it over');
  }

  /** Greedy steps as the in-model loop takes them: feed `tokens`, choose by argmax, return the state with all but the last fed (no minimum length is asked here: no EOS ban). */
  private async greedyRun(tokens: number[], state: Box, steps: number, eos: number[], pad: number, finished: boolean[], _eosBanSteps: number): Promise<{ tokens: number[][]; state: Box }> {
    this.use(state, 'greedy');
    const V = this.inner.spec.vocab;
    const done = [...finished];
    let h = state.h;
    let feed = tokens;
    const out: number[][] = [];
    for (let i = 0; i < steps && !done.every(Boolean); i++) {
      const past = h[0].length;
      const o = await this.inner.step({ inputIds: BigInt64Array.from(feed, BigInt), batch: feed.length, seqLen: 1, attentionMask: new BigInt64Array(feed.length * (past + 1)).fill(1n), pastLength: past, prefill: false }, h);
      h = o.state;
      feed = feed.map((_, r) => {
        if (done[r]) return pad;
        let best = 0;
        for (let v = 1; v < V; v++) if (o.logits[r * V + v] > o.logits[r * V + best]) best = v;
        if (eos.includes(best)) done[r] = true;
        return best;
      });
      out.push(feed);
    }
    return { tokens: out, state: this.hand(h) };
  }
}

const prompt = { inputIds: [[1, 2, 3], [4, 5, 6]] };
const stopAt = (n: number): GenerationOptions['onToken'] => (e) => {
  if (e.step === n) throw new Error(`stopped at token ${n}`);
};

/** Runs generate() to its failure and checks that every state handed out was released, each once. */
async function releasedAfter(model: Tracked, opts: GenerationOptions, error: RegExp): Promise<void> {
  await assert.rejects(generate(model, prompt, { maxNewTokens: 12, ...opts }), error);
  assert.ok(model.handed >= 1, 'the model handed out states');
  assert.deepEqual(model.problems, []);
  assert.equal(model.live.size, 0, `${model.live.size} of the ${model.handed} states handed out were not released`);
}

test('an onToken that throws: the state of the step it stopped at is released (greedy, sampling with its expansion, greedy in the model)', async () => {
  await releasedAfter(new Tracked(), { greedyChunk: 0, onToken: stopAt(3) }, /stopped at token 3/);
  await releasedAfter(new Tracked(), { doSample: true, numReturnSequences: 2, seed: 1, onToken: stopAt(2) }, /stopped at token 2/);
  // in the model, four tokens a call: it stops in the middle of recording the second chunk
  await releasedAfter(new Tracked(undefined, true), { greedyChunk: 4, onToken: stopAt(6) }, /stopped at token 6/);
});

test('a step, reorder or in-model greedy run that fails: the state it was given is released', async () => {
  await releasedAfter(new Tracked({ kind: 'step', at: 4 }), { greedyChunk: 0 }, /step 4 failed/);
  await releasedAfter(new Tracked({ kind: 'reorder', at: 1 }), { doSample: true, numReturnSequences: 2 }, /reorder 1 failed/);
  await releasedAfter(new Tracked({ kind: 'greedy', at: 2 }, true), { greedyChunk: 3 }, /greedy 2 failed/);
  // beam search: the expansion to the beams, a later reorder, a later step
  await releasedAfter(new Tracked({ kind: 'reorder', at: 1 }), { numBeams: 3 }, /reorder 1 failed/);
  await releasedAfter(new Tracked({ kind: 'reorder', at: 5 }), { numBeams: 3 }, /reorder 5 failed/);
  await releasedAfter(new Tracked({ kind: 'step', at: 5 }), { numBeams: 3 }, /step 5 failed/);
});

test('a loop that ends normally releases every state too, each once', async () => {
  for (const [inModel, opts] of [
    [false, { greedyChunk: 0 }],
    [true, { greedyChunk: 5 }],
    [false, { doSample: true, numReturnSequences: 3, seed: 2 }],
    [false, { numBeams: 3, numReturnSequences: 2 }],
  ] as Array<[boolean, GenerationOptions]>) {
    const model = new Tracked(undefined, inModel);
    await generate(model, prompt, { maxNewTokens: 12, ...opts });
    assert.deepEqual(model.problems, [], JSON.stringify(opts));
    assert.equal(model.live.size, 0, JSON.stringify(opts));
  }
});
