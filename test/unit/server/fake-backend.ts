// A stand-in for runtime/model.ts in the server's workers, for tests of queueing, batching,
// cancellation and shutdown that must not depend on timing. It blocks its thread (as
// onnxruntime's session.run does) until the test opens a gate, and records every batch size.
// Its decoding steps are apart as onnxruntime-node's runs are (each from a setImmediate, so the
// worker's event loop turns between two), and it looks at GenerateOptions.signal before each, as
// the generation loop does.
//
// backendOptions: { gate: SharedArrayBuffer (Int32 0: 0 closed, 1 open), log: SharedArrayBuffer
// (Int32 0: batches so far, then one batch size per batch), steps?: SharedArrayBuffer (Int32 0:
// decoding steps run), beams?: true (as beam search: no onToken while decoding, each sequence
// replayed when done) }.
import type { ServedModel } from '../../../runtime/server/index.js';

export async function load(_dir: string, opts: { options?: unknown }): Promise<ServedModel> {
  const o = opts.options as { gate: SharedArrayBuffer; log: SharedArrayBuffer; steps?: SharedArrayBuffer; beams?: boolean; failLoad?: boolean };
  if (o.failLoad) throw Object.assign(new Error('fake backend refused to load'), { code: 'BLIP5043' });
  const gate = new Int32Array(o.gate);
  const log = new Int32Array(o.log);
  const stepsRun = o.steps ? new Int32Array(o.steps) : undefined;
  const record = (n: number) => {
    const k = Atomics.add(log, 0, 1);
    if (k + 1 < log.length) Atomics.store(log, k + 1, n);
  };
  const block = () => {
    while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0, 50);
  };
  return {
    providers: { encode: 'cpu', decoder: 'cpu' },
    async generate(images, g) {
      record(images.length);
      // a setting the model refuses for one image (37 pixels wide): the server must find whose it is
      // a worker that dies (45 pixels wide): the server answers 500 and starts a new one
      if (images.some((i) => i.width === 45)) process.exit(3);
      if (images.some((i) => i.width === 37)) throw Object.assign(new Error('the fake refuses 37-pixel-wide images'), { code: 'BLIP5030' });
      const n = g.numReturnSequences ?? 1;
      const steps = g.maxNewTokens ?? 3;
      for (let s = 0; s < steps; s++) {
        g.signal?.throwIfAborted();
        await new Promise((r) => setImmediate(r));
        block();
        if (stepsRun) Atomics.add(stepsRun, 0, 1);
        if (!o.beams) for (let r = 0; r < images.length * n; r++) g.onToken?.(r, 'w ', 7);
      }
      if (o.beams) for (let r = 0; r < images.length * n; r++) for (let s = 0; s < steps; s++) g.onToken?.(r, 'w ', 7);
      return images.map((img) => {
        const seq = (k: number) => ({ text: `${img.width}x${img.height} ${k}`.trim(), tokenIds: new Array<number>(steps).fill(7) });
        return { ...seq(0), ...(n > 1 ? { sequences: Array.from({ length: n }, (_, k) => seq(k)) } : {}), timingsMs: { preprocess: 0, encode: 0, prefill: 0, decode: 0, total: 0 } };
      });
    },
    async itm(images, texts) {
      record(texts.length);
      block();
      return texts.map((t) => ({ itm: t.length / 100, itc: -t.length / 100 }));
    },
    async embedImages(images) {
      record(images.length);
      block();
      return images.map((i) => ({ data: new Float32Array([i.width, i.height]), dims: [2] }));
    },
    async embedTexts(texts) {
      record(texts.length);
      block();
      return texts.map((t) => ({ data: new Float32Array([t.length, 0]), dims: [2] }));
    },
    async close() {},
  };
}
