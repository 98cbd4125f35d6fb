// The outputs fit one compiled model: one `generate` (an artifact drives one decoder), or
// retrieval outputs (at most one itm and one itc, all in retrieval.onnx), never both.
// docs/diagnostics.md#blip2034
import type { DraftOutput } from '../syntax/draft.js';
import type { CheckContext } from './CheckContext.js';

export function ArtifactOutputsRule(ctx: CheckContext): void {
  const first = new Map<string, DraftOutput>();
  let generate: DraftOutput | undefined;
  let retrieval: DraftOutput | undefined;
  for (const out of ctx.model.outputs.values()) {
    if (!['generate', 'itm', 'itc'].includes(out.task)) continue; // BLIP2012
    const earlier = first.get(out.task);
    if (earlier) {
      const why = out.task === 'generate' ? 'a compiled model drives one decoder' : `retrieval.onnx has one ${out.task} output`;
      ctx.report('BLIP2034', out.loc, `output '${out.name}' is a second ${out.task}() output: expected one (${why}); compile each as its own model`, [
        { message: `the first ${out.task}() output, '${earlier.name}'`, loc: earlier.loc },
      ]);
      continue;
    }
    first.set(out.task, out);
    const other = out.task === 'generate' ? retrieval : generate;
    if (other) {
      const [gen, ret] = out.task === 'generate' ? [out, other] : [other, out];
      ctx.report('BLIP2034', out.loc, `model '${ctx.model.name}' mixes generate() ('${gen.name}') and ${ret.task}() ('${ret.name}') outputs: expected generate or retrieval outputs, not both; compile them as two models`, [
        { message: `the ${other.task}() output '${other.name}'`, loc: other.loc },
      ]);
      continue;
    }
    if (out.task === 'generate') generate = out;
    else retrieval ??= out;
  }
}
