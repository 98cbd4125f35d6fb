// One blip-graph measurement in a fresh process (so that its peak RSS is its own): load a compiled
// model through the library API, caption / answer the same image `batch` times, greedy, exactly
// `tokens` new tokens, one warm-up then `repeat` timed calls. Prints one JSON line.
//
//   node --import tsx bench/ours.ts --dir ART --image IMG [--prompt P] --threads 2 --batch B --tokens 20
//        [--repetition-penalty 1] --repeat R [--device cpu|cuda|tensorrt|webgpu] [--probe-threads T]
//        [--kv-on-device 0] (WebGPU: the KV cache goes through the host between steps)
//        [--rounds-stdin 1] (after the warm-up, one timed call per "go" line on stdin, one JSON line
//                            each: bench/run.ts's paired rounds against a resident PyTorch)
//
// With --probe-threads, memory read bandwidth is measured (bench/bandwidth.ts, in a child process so
// that its 512 MB buffer stays out of this process's peak RSS) before the first timed call and after
// each one: every timed call then has a reading taken within a second or two of its decode.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { load } from '../runtime/model.js';
import { oursGenerateOptions } from './decoding.js';
import { flags } from './flags.js';
import { peakRssMb, readProcMemory } from './procMemory.js';

/** One reading of the bandwidth probe, GB/s, from a fresh process. */
function probeBandwidth(threads: number): number {
  // Run as TypeScript (tsx, npm run bench) or as built JavaScript (dist/, the GPU package).
  const probe = import.meta.url.endsWith('.ts') ? ['--import', 'tsx', join(import.meta.dirname, 'bandwidth.ts')] : [join(import.meta.dirname, 'bandwidth.js')];
  const r = spawnSync(process.execPath, [...probe, String(threads)], { encoding: 'utf8' });
  const gbs = Number(/([\d.]+) GB\/s/.exec(r.stdout ?? '')?.[1]);
  if (r.status !== 0 || !Number.isFinite(gbs)) throw new Error(`bandwidth probe failed (${r.status}): ${(r.stderr ?? '').slice(-500)}`);
  return gbs;
}

async function main(): Promise<void> {
  const a = flags(process.argv.slice(2));
  const [batch, tokens, repeat, threads] = [Number(a.batch ?? 1), Number(a.tokens ?? 20), Number(a.repeat ?? 3), Number(a.threads ?? 2)];
  const t0 = performance.now();
  const model = await load(a.dir, { threads, device: a.device ?? 'cpu', kvOnDevice: a['kv-on-device'] !== '0' });
  const loadMs = performance.now() - t0;
  const bytes = new Uint8Array(readFileSync(a.image));
  const images = Array.from({ length: batch }, (_, i) => ({ name: `image ${i}`, bytes }));
  const opts = oursGenerateOptions({ tokens, repetitionPenalty: Number(a['repetition-penalty'] ?? 1), beams: Number(a.beams ?? 1) }, a.prompt, batch);
  const tw = performance.now();
  await model.generate(images, opts); // warm-up
  const firstCallMs = performance.now() - tw;
  if (a['rounds-stdin'] === '1') return rounds(() => model.generate(images, opts), () => model.close());
  const runs: Array<{ wall: number; t: { preprocess: number; encode: number; prefill: number; decode: number; total: number } }> = [];
  let last: Awaited<ReturnType<typeof model.generate>> = [];
  const probeThreads = a['probe-threads'] ? Number(a['probe-threads']) : 0;
  const bandwidth: number[] = probeThreads ? [probeBandwidth(probeThreads)] : [];
  // the kernel's share of each timed call (page faults, system time: bench/mallocEnv.ts)
  const kernel: Array<{ minorFaults: number; systemS: number }> = [];
  for (let r = 0; r < repeat; r++) {
    const u0 = process.resourceUsage();
    const t = performance.now();
    last = await model.generate(images, opts);
    runs.push({ wall: performance.now() - t, t: last[0].timingsMs });
    const u1 = process.resourceUsage();
    kernel.push({ minorFaults: u1.minorPageFault - u0.minorPageFault, systemS: (u1.systemCPUTime - u0.systemCPUTime) / 1e6 });
    if (probeThreads) bandwidth.push(probeBandwidth(probeThreads));
  }
  const mean = (f: (r: (typeof runs)[number]) => number) => runs.reduce((s, r) => s + f(r), 0) / runs.length;
  const decodeMs = mean((r) => r.t.decode);
  const memory = { ...readProcMemory(), minor_faults_per_call: kernel.reduce((s, k) => s + k.minorFaults, 0) / repeat, system_s_per_call: kernel.reduce((s, k) => s + k.systemS, 0) / repeat };
  await model.close();
  const out = {
    end_to_end_ms: mean((r) => r.wall),
    end_to_end_min_ms: Math.min(...runs.map((r) => r.wall)),
    preprocess_ms: mean((r) => r.t.preprocess),
    image_encode_ms: mean((r) => r.t.encode),
    prefill_ms: mean((r) => r.t.prefill),
    decode_ms: decodeMs,
    decode_tokens_per_s: (batch * (tokens - 1) * 1000) / decodeMs,
    // Per timed call: its decode rate and the probe readings just before and just after it.
    runs: runs.map((r, i) => ({ decode_tokens_per_s: (batch * (tokens - 1) * 1000) / r.t.decode, bandwidth_before_gb_s: bandwidth[i], bandwidth_after_gb_s: bandwidth[i + 1] })),
    load_ms: loadMs,
    first_call_ms: firstCallMs,
    peak_rss_mb: peakRssMb(),
    // at the end of the timed calls, the model still loaded
    memory,
    providers: model.providers,
    sequences: last.map((r) => r.tokenIds),
    texts: last.map((r) => r.text),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

/** Paired rounds: "ready", then one timed call per "go" line, until stdin ends or says something else. */
async function rounds(call: () => Promise<Array<{ tokenIds: number[] }>>, close: () => Promise<void>): Promise<void> {
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() !== 'go') break;
    const t = performance.now();
    const r = await call();
    process.stdout.write(JSON.stringify({ wall_ms: performance.now() - t, sequences: r.map((x) => x.tokenIds) }) + '\n');
  }
  await close();
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
