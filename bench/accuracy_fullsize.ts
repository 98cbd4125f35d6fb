// Accuracy of compiled variants of the full-size random BLIP-base checkpoint against transformers'
// own outputs (.bench/blip-base-random/expected.safetensors, test/oracle/make_fullsize.py): two
// 384 × 384 images, two decoder sequences (one right-padded), fed to decoder.onnx one position per
// call through the KV cache.
// Reports max |Δ| of the logits, relative to max |logit|, and how many argmax tokens agree.
//
//   node --import tsx bench/accuracy_fullsize.ts DIR...   (compiled artifacts of that checkpoint)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readManifest } from '../src/artifact/manifest.js';
import { decodeModel } from '../src/lower/emitOnnx.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';

const EXP = '.bench/blip-base-random';

async function main(): Promise<void> {
  const st = SafetensorsFile.open(join(EXP, 'expected.safetensors'));
  const json = JSON.parse(readFileSync(join(EXP, 'expected.json'), 'utf8'));
  const arr = (n: string) => ({ data: Float32Array.from(st.readFloat32(n)), shape: st.info(n)!.shape });
  const px = arr('pixel_values');
  const want = arr('decoder_logits'); // (2, 6, V)
  const [B, S, V] = want.shape;
  for (const dir of process.argv.slice(2)) {
    const m = readManifest(dir);
    const so = { graphOptimizationLevel: 'all' as const, intraOpNumThreads: 2 };
    const enc = await ort.InferenceSession.create(join(dir, 'encode.onnx'), so);
    const dec = await ort.InferenceSession.create(join(dir, 'decoder.onnx'), so);
    const e = await enc.run({ pixel_values: new ort.Tensor('float32', px.data, px.shape) });
    const ids: number[][] = json.decoder_input_ids;
    const mask: number[][] = json.attention_mask;
    const i64 = (r: number[][]) => new ort.Tensor('int64', BigInt64Array.from(r.flat().map(BigInt)), [r.length, r[0].length]);
    const feeds: Record<string, ort.Tensor> = {};
    for (const n of m.decoder!.from_encode) feeds[n] = e[n] as ort.Tensor;
    for (const n of dec.inputNames) if (n.startsWith('past.')) feeds[n] = new ort.Tensor('float32', new Float32Array(0), [B, m.decoder!.kv_heads, 0, m.decoder!.head_dim]);
    // Step by step (one position per call), so every position's logits come out.
    let maxErr = 0;
    let scale = 0;
    let agree = 0;
    let total = 0;
    for (let s = 0; s < S; s++) {
      // position_ids (BLIP's text decoder takes them): as the runtime computes them
      // (runtime/generation/onnx.ts, transformers' cumsum(mask) - 1), 0 at padding.
      const pos: Record<string, ort.Tensor> = dec.inputNames.includes('position_ids')
        ? { position_ids: i64(mask.map((r) => [r[s] ? r.slice(0, s + 1).reduce((a, c) => a + c, 0) - 1 : 0])) }
        : {};
      const o = await dec.run({ ...feeds, ...pos, input_ids: i64(ids.map((r) => [r[s]])), attention_mask: i64(mask.map((r) => r.slice(0, s + 1))) });
      const got = o.logits.data as Float32Array;
      for (let b = 0; b < B; b++) {
        if (!mask[b][s]) continue; // padded positions are not compared
        let [ag, aw] = [0, 0];
        for (let v = 0; v < V; v++) {
          const w = want.data[(b * S + s) * V + v];
          maxErr = Math.max(maxErr, Math.abs(got[b * V + v] - w));
          scale = Math.max(scale, Math.abs(w));
          if (got[b * V + v] > got[b * V + ag]) ag = v;
          if (w > want.data[(b * S + s) * V + aw]) aw = v;
        }
        total++;
        if (ag === aw) agree++;
      }
      for (const n of dec.inputNames) if (n.startsWith('past.')) feeds[n] = o[n.replace('past.', 'present.')] as ort.Tensor;
    }
    // MatMulNBits' accuracy_level (quantized builds): decides the CPU kernel and its rounding.
    const levels = new Set(decodeModel(readFileSync(join(dir, 'decoder.onnx'))).graph!.node!.filter((n) => n.opType === 'MatMulNBits').map((n) => Number(n.attribute!.find((a) => a.name === 'accuracy_level')?.i ?? 0)));
    const level = levels.size ? ` (accuracy_level ${[...levels].join(', ')})` : '';
    console.log(`| ${m.dtype}${m.target ? ` --target ${m.target}` : ''}${m.quantize ? ` --quantize ${m.quantize}` : ''}${level} | ${(m.weights.bytes / 1e6).toFixed(0)} MB | ${maxErr.toExponential(2)} | ${(maxErr / scale).toExponential(2)} | ${agree}/${total} |`);
  }
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
