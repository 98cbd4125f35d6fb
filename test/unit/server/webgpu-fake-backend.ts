// A stand-in for runtime/model.ts whose sessions say they run on WebGPU, for the scheduler's
// WebGPU turns (webgpuTurns.test.ts). It counts how many workers are inside a load or a batch at
// once, and blocks each batch until the test opens a gate.
//
// backendOptions: { state: SharedArrayBuffer (Int32: 0 workers inside now, 1 the most at once),
// gate: SharedArrayBuffer (Int32 0: 0 closed, 1 open), loadMs: how long a load takes }.
import type { ServedModel } from '../../../runtime/server/index.js';

export async function load(_dir: string, opts: { options?: unknown }): Promise<ServedModel> {
  const o = opts.options as { state: SharedArrayBuffer; gate: SharedArrayBuffer; loadMs: number };
  const state = new Int32Array(o.state);
  const gate = new Int32Array(o.gate);
  const inside = <T>(work: () => T): T => {
    const now = Atomics.add(state, 0, 1) + 1;
    for (let most = Atomics.load(state, 1); now > most; most = Atomics.load(state, 1)) Atomics.compareExchange(state, 1, most, now);
    try {
      return work();
    } finally {
      Atomics.sub(state, 0, 1);
    }
  };
  // a load blocks its thread, as creating onnxruntime sessions does
  inside(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, o.loadMs));
  const block = () => {
    while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0, 50);
  };
  return {
    providers: { encode: 'webgpu', decoder: 'webgpu' },
    async generate(images, g) {
      return inside(() => {
        block();
        return images.map((img) => ({ text: `${img.width}x${img.height}`, tokenIds: new Array<number>(g.maxNewTokens ?? 1).fill(7), timingsMs: { preprocess: 0, encode: 0, prefill: 0, decode: 0, total: 0 } }));
      });
    },
    async itm() {
      return [];
    },
    async embedImages() {
      return [];
    },
    async embedTexts() {
      return [];
    },
    async close() {},
  };
}
