#!/usr/bin/env node
// The demo model's held-out evaluation through the compiled ONNX model (not transformers):
// demo/heldout/{seed}.png, 200 scenes, with the settings demo/eval.json was measured with (greedy,
// 24 new tokens, stop at "\n"; captions with no prompt, questions as "Question: {q} Answer:").
// Reports caption exact match, greedy token accuracy (same definition as eval.json: generated token
// = reference token at the same position, over all reference tokens including "\n"), question
// accuracy, and agreement with transformers' token ids recorded in eval.json.
//
//   node scripts/eval-demo.mjs [--limit N] [--batch-size B] [--threads N] [--device D] [--json FILE]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, ensureDemoModel, library, rel } from './demo-model.mjs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
if (args.includes('--help') || args.includes('-h')) {
  console.log(`Usage: node scripts/eval-demo.mjs [--limit N] [--batch-size B] [--threads N] [--device D] [--json FILE]

Compiles the demo model if needed (.blip-cache/demo/model), runs the 200 held-out scenes of
demo/eval.json through it and prints caption exact match, token accuracy, question accuracy and
agreement with the token ids transformers produced.

Examples:
  node scripts/eval-demo.mjs
  node scripts/eval-demo.mjs --limit 20 --batch-size 1
  node scripts/eval-demo.mjs --json /tmp/demo-eval.json`);
  process.exit(0);
}
const limit = opt('limit') === undefined ? Infinity : Number(opt('limit'));
const batchSize = Number(opt('batch-size') ?? 16);
const threads = opt('threads') === undefined ? undefined : Number(opt('threads'));
const device = opt('device') ?? 'cpu';

const evalJson = JSON.parse(readFileSync(join(ROOT, 'demo', 'eval.json'), 'utf8'));
const items = evalJson.items.slice(0, limit);
const gen = evalJson.setup.generation;
const heldout = (f) => join(ROOT, 'demo', 'heldout', f);
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const groups = (caption) => (/ from (left to right|top to bottom)$/.test(caption) ? 3 : / (left of|right of|above|below) /.test(caption) ? 2 : 1);
const qtype = (q) => (q.startsWith('what colour') ? 'colour' : q.startsWith('what size') ? 'size' : 'count');
const pct = (k, n, digits = 1) => (n ? `${((100 * k) / n).toFixed(digits)} %` : '-');

const { load } = await library();
const c = await ensureDemoModel();
console.log(`model: ${rel(c.out)} (${c.compiled ? `compiled now, ${c.seconds.toFixed(1)} s` : 'up to date'})`);
const model = await load(c.out, { device, threads });
const opts = { maxNewTokens: gen.max_new_tokens, numBeams: gen.num_beams, doSample: gen.do_sample, batchSize };

const t0 = performance.now();
// Captions: every image, no prompt.
const captions = await model.generate(items.map((it) => heldout(it.file)), opts);
const tCaptions = performance.now() - t0;
// Questions: every (image, question) pair of eval.json.
const pairs = items.flatMap((it, i) => it.questions.map((q, j) => ({ i, j, q })));
const t1 = performance.now();
const answers = await model.generate(pairs.map((p) => heldout(items[p.i].file)), { ...opts, prompt: pairs.map((p) => p.q.prompt) });
const tQuestions = performance.now() - t1;
await model.close();

const s = { exact: 0, tokRight: 0, tokAll: 0, sameIds: 0, sameTfText: 0, byGroups: {}, mismatches: [] };
items.forEach((it, i) => {
  const r = captions[i];
  const g = groups(it.caption);
  s.byGroups[g] ??= { n: 0, exact: 0 };
  s.byGroups[g].n++;
  if (r.text === it.caption) {
    s.exact++;
    s.byGroups[g].exact++;
  }
  it.reference_ids.forEach((id, k) => {
    s.tokAll++;
    if (r.tokenIds[k] === id) s.tokRight++;
  });
  if (same(r.tokenIds, it.generated_ids)) s.sameIds++;
  else s.mismatches.push({ seed: it.seed, ours: r.text, transformers: it.predicted });
  if (r.text === it.predicted) s.sameTfText++;
});
const qa = { right: 0, n: 0, sameIds: 0, byType: {} };
pairs.forEach((p, k) => {
  const r = answers[k];
  const t = qtype(p.q.question);
  qa.byType[t] ??= { n: 0, right: 0 };
  qa.n++;
  qa.byType[t].n++;
  if (r.text === p.q.answer) {
    qa.right++;
    qa.byType[t].right++;
  }
  if (same(r.tokenIds, p.q.generated_ids)) qa.sameIds++;
});

const tf = evalJson.summary;
console.log(`\n${items.length} held-out scenes (seeds ${items[0].seed}–${items[items.length - 1].seed}), greedy, ${gen.max_new_tokens} new tokens at most, batch size ${batchSize}\n`);
console.log(`  ${''.padEnd(29)}${'ONNX (this run)'.padEnd(23)}transformers (demo/eval.json)`);
const row = (name, ours, theirs) => console.log(`  ${name.padEnd(29)}${ours.padEnd(23)}${theirs}`);
const full = items.length === evalJson.items.length;
row('caption exact match', `${pct(s.exact, items.length)} (${s.exact}/${items.length})`, full ? `${(100 * tf.caption_exact_match).toFixed(1)} %` : '');
for (const g of Object.keys(s.byGroups).sort()) row(`  ${g} group${g === '1' ? '' : 's'}`, `${pct(s.byGroups[g].exact, s.byGroups[g].n)} (${s.byGroups[g].exact}/${s.byGroups[g].n})`, full ? `${(100 * tf.caption_exact_match_by_groups[g]).toFixed(1)} %` : '');
row('caption token accuracy', `${pct(s.tokRight, s.tokAll, 2)} (${s.tokRight}/${s.tokAll})`, full ? `${(100 * tf.caption_token_accuracy_greedy).toFixed(2)} %` : '');
row('question accuracy', `${pct(qa.right, qa.n)} (${qa.right}/${qa.n})`, full ? `${(100 * tf.qa_accuracy).toFixed(1)} %` : '');
for (const t of Object.keys(qa.byType).sort()) row(`  ${t}`, `${pct(qa.byType[t].right, qa.byType[t].n)} (${qa.byType[t].right}/${qa.byType[t].n})`, full ? `${(100 * tf.qa_accuracy_by_type[t]).toFixed(1)} %` : '');
console.log('\nagreement with transformers (same token ids, terminator included)');
console.log(`  captions   ${s.sameIds}/${items.length}`);
console.log(`  answers    ${qa.sameIds}/${qa.n}`);
for (const m of s.mismatches.slice(0, 10)) console.log(`  differs: seed ${m.seed}: ONNX "${m.ours}" / transformers "${m.transformers}"`);
console.log(`\ntime: captions ${(tCaptions / 1000).toFixed(1)} s (${(tCaptions / items.length).toFixed(1)} ms/image), questions ${(tQuestions / 1000).toFixed(1)} s (${(tQuestions / qa.n).toFixed(1)} ms/question)`);

const jsonOut = opt('json');
if (jsonOut) {
  writeFileSync(
    jsonOut,
    JSON.stringify(
      {
        scenes: items.length,
        caption_exact_match: s.exact / items.length,
        caption_exact_match_by_groups: Object.fromEntries(Object.entries(s.byGroups).map(([g, v]) => [g, v.exact / v.n])),
        caption_token_accuracy_greedy: s.tokRight / s.tokAll,
        qa_accuracy: qa.right / qa.n,
        qa_accuracy_by_type: Object.fromEntries(Object.entries(qa.byType).map(([t, v]) => [t, v.right / v.n])),
        same_ids_as_transformers: { captions: s.sameIds, answers: qa.sameIds, questions: qa.n },
        seconds: { captions: tCaptions / 1000, questions: tQuestions / 1000 },
        batch_size: batchSize,
        predictions: items.map((it, i) => ({ seed: it.seed, caption: it.caption, predicted: captions[i].text, token_ids: captions[i].tokenIds })),
      },
      null,
      1,
    ) + '\n',
  );
  console.log(`wrote ${jsonOut}`);
}
process.exitCode = s.sameIds === items.length && qa.sameIds === qa.n ? 0 : 1;
