// Greedy 20 tokens on a compiled BLIP artifact: a plain host loop over decoder.onnx (session.run per
// token, argmax in JS) against one run of ART/greedy-loop.onnx (bench/greedy_loop.py), alternating; prints the
// tokens of both (they must agree) and min / median wall time.
//   node bench/greedy_loop.mjs ART [rounds]
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
const dir = process.argv[2]; const ROUNDS = +(process.argv[3] ?? 5); const N = 20; const B = 1;
const m = JSON.parse(readFileSync(dir + '/manifest.json')); const d = m.decoder;
const mk = (f) => ort.InferenceSession.create(dir + '/' + f, { graphOptimizationLevel: 'all', intraOpNumThreads: 2 });
const enc = await mk('encode.onnx');
const px = new Float32Array(B * 3 * 384 * 384).map((_, i) => Math.sin(i) * 0.5);
const eo = await enc.run({ pixel_values: new ort.Tensor('float32', px, [B, 3, 384, 384]) });
const dec = await mk('decoder.onnx'); const loop = await mk('greedy-loop.onnx');
const pastNames = d.inputs.filter((n) => n.startsWith('past.'));
const prompt = [30522n, 1037n, 3861n, 1997n];
const emptyPast = () => Object.fromEntries(pastNames.map((n) => [n, new ort.Tensor('float32', new Float32Array(0), [B, d.kv_heads, 0, d.head_dim])]));
const cross = () => Object.fromEntries(d.inputs.filter((n) => n.startsWith('cross')).map((n) => [n, eo[n]]));
async function host() {
  let past = emptyPast(); let ids = prompt; const toks = []; let T = 0;
  for (let s = 0; s < N; s++) {
    T += ids.length;
    const out = await dec.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids), [B, ids.length]), attention_mask: new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [B, T]), ...past, ...cross() });
    const lg = out.logits.data; let best = 0; for (let i = 1; i < lg.length; i++) if (lg[i] > lg[best]) best = i;
    toks.push(best); past = Object.fromEntries(pastNames.map((n) => [n, out[n.replace('past.', 'present.')]])); ids = [BigInt(best)];
  }
  return toks;
}
async function inGraph() {
  const out = await loop.run({ max_new_tokens: new ort.Tensor('int64', BigInt64Array.from([BigInt(N)]), []), input_ids: new ort.Tensor('int64', BigInt64Array.from(prompt), [B, prompt.length]), attention_mask: new ort.Tensor('int64', new BigInt64Array(prompt.length).fill(1n), [B, prompt.length]), ...emptyPast(), ...cross() });
  return Array.from(out.tokens.data, Number);
}
const res = { host: [], loop: [] };
for (let r = 0; r < ROUNDS; r++) for (const [k, f] of [['host', host], ['loop', inGraph]]) {
  const t = performance.now(); const toks = await f(); res[k].push(performance.now() - t);
  if (r === 0) console.log(k, toks.join(','));
}
for (const [k, v] of Object.entries(res)) { v.sort((a, b) => a - b); console.log(k.padEnd(5), `${N} tokens: min ${v[0].toFixed(0)} ms, median ${v[v.length >> 1].toFixed(0)} ms`); }
