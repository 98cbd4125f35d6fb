// The scripted language model of test/oracle/generation_cases.py: next-token logits are a fixed
// function of the token history. State = the histories (so beam reordering is exercised for real).
import type { StepInput, StepModel, StepOutput } from '../../../runtime/generation/index.js';

export interface ScriptedSpec {
  vocab: number;
  salt: number;
  eos: number[];
  eos_bonus: number;
}

export function scriptedLogits(history: number[], s: ScriptedSpec): number[] {
  let h = (2166136261 ^ s.salt) >>> 0;
  for (const t of history) h = Math.imul((h ^ t) >>> 0, 16777619) >>> 0;
  const out: number[] = [];
  for (let v = 0; v < s.vocab; v++) {
    let x = (h ^ Math.imul(v, 2654435761)) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    x ^= x >>> 16;
    out.push((x >>> 22) / 64.0 - 8.0 + v / 65536.0);
  }
  if (s.eos_bonus && h % 3 === 0) for (const e of s.eos) out[e] += s.eos_bonus;
  return out;
}

export class ScriptedModel implements StepModel<number[][]> {
  calls = 0;
  rowsSeen: number[] = [];
  constructor(readonly spec: ScriptedSpec) {}
  async step(input: StepInput, state: number[][] | undefined): Promise<StepOutput<number[][]>> {
    this.calls++;
    this.rowsSeen.push(input.batch);
    const hist = state ? state.map((r) => r.slice()) : Array.from({ length: input.batch }, () => [] as number[]);
    if (hist.length !== input.batch) throw new Error(`state has ${hist.length} rows, input ${input.batch}`);
    if (input.attentionMask.length !== input.batch * (input.pastLength + input.seqLen)) throw new Error('attention mask shape');
    const logits = new Float32Array(input.batch * this.spec.vocab);
    for (let r = 0; r < input.batch; r++) {
      for (let j = 0; j < input.seqLen; j++) hist[r].push(Number(input.inputIds[r * input.seqLen + j]));
      if (hist[r].length !== input.pastLength + input.seqLen) throw new Error('past length');
      logits.set(scriptedLogits(hist[r], this.spec), r * this.spec.vocab);
    }
    return { logits, vocab: this.spec.vocab, state: hist };
  }
  reorder(state: number[][], rows: number[]): number[][] {
    return rows.map((i) => state[i].slice());
  }
}
