// bench/gpu/run.sh's summary: reads what the phases left in the work directory and writes
// summary.json and summary.md (into $OUT on the GPU machine). Runs after every phase, so a call cut
// short still returns what was measured up to then.
//
//   node dist/bench/gpu/summary.js --work .bench/gpu --out $OUT
//
// Work directory: settings.json (run.sh's settings), phases.tsv (name, status, seconds, timeout,
// note), ours.json (bench/ours.ts), torch.json (bench/torch_generate.py, run alongside the compile),
// torch_alone.json (the same, rerun alone after blip-graph when time was left), probe.json
// (bench/gpu/probe.ts), kernels.json (bench/gpu/kernels.ts), logs/make.log, logs/compile.log.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sameNewTokens } from '../agreement.js';

interface GenRun {
  end_to_end_ms?: number;
  image_encode_ms?: number;
  prefill_ms?: number;
  decode_tokens_per_s?: number | null;
  peak_rss_mb?: number;
  sequences?: number[][];
  [k: string]: unknown;
}

export interface Phase {
  name: string;
  status: string;
  seconds: number;
  timeout: number;
  note: string;
}

function lastJson(file: string): GenRun | undefined {
  if (!existsSync(file)) return undefined;
  const line = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) return undefined;
  try {
    return JSON.parse(line) as GenRun;
  } catch {
    return undefined;
  }
}

export function readPhases(file: string): Phase[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name, status, seconds, timeout, ...note] = l.split('\t');
      return { name, status, seconds: Number(seconds), timeout: Number(timeout), note: note.join(' ') };
    });
}

/** New tokens of both sides: equal (sameNewTokens), and how many leading tokens agree (transformers' sequences hold the prompt). */
export function compareTokens(ours: number[][] | undefined, torch: number[][] | undefined, tokens: number): { same: boolean; agree: number[] } | undefined {
  if (!ours || !torch || ours.length !== torch.length) return undefined;
  const agree = ours.map((s, i) => {
    const t = torch[i].slice(-tokens);
    let k = 0;
    while (k < s.length && k < t.length && s[k] === t[k]) k++;
    return k;
  });
  // a short or empty row of blip-graph's is not the same: both sides are asked for exactly `tokens`
  return { same: sameNewTokens(ours, torch, tokens), agree };
}

/** nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu samples taken while blip-graph ran. */
export function gpuSamples(file: string): { samples: number; maxMemoryMiB: number; maxUtilization: number } | undefined {
  if (!existsSync(file)) return undefined;
  const rows = readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.split(',').map((x) => x.trim()))
    .filter((r) => r.length >= 3 && Number.isFinite(Number(r[1])));
  if (!rows.length) return undefined;
  return { samples: rows.length, maxMemoryMiB: Math.max(...rows.map((r) => Number(r[1]))), maxUtilization: Math.max(...rows.map((r) => Number(r[2]) || 0)) };
}

function grep(file: string, re: RegExp): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => re.test(l)) : [];
}

export function summarize(work: string): { json: Record<string, unknown>; md: string } {
  const settings = existsSync(join(work, 'settings.json')) ? (JSON.parse(readFileSync(join(work, 'settings.json'), 'utf8')) as Record<string, string>) : {};
  const tokens = Number(settings.tokens ?? 20);
  const phases = readPhases(join(work, 'phases.tsv'));
  const ours = lastJson(join(work, 'ours.json'));
  const oursKvHost = lastJson(join(work, 'ours_kv_host.json'));
  const oursInt4 = lastJson(join(work, 'ours_int4.json'));
  const torchPar = lastJson(join(work, 'torch.json'));
  const torchAlone = lastJson(join(work, 'torch_alone.json'));
  const torch = torchAlone ?? torchPar;
  const probe = lastJson(join(work, 'probe.json'));
  const kernels = lastJson(join(work, 'kernels.json'));
  const gpu = gpuSamples(join(work, 'gpu_ours.csv'));
  if (ours && gpu) ours.peak_gpu_mb = gpu.maxMemoryMiB;
  const cmp = compareTokens(ours?.sequences, torch?.sequences, tokens);
  const cmpPar = torchAlone ? compareTokens(ours?.sequences, torchPar?.sequences, tokens) : undefined;
  const make = grep(join(work, 'logs', 'make.log'), /parameters|GB/).pop();
  const compile = grep(join(work, 'logs', 'compile.log'), /^compiled |^\s+(encode|decoder)\.onnx|^\s+weights\.bin|^\s+time|^\s+parameters/);
  const json = { settings, phases, probe, kernels, make, compile, gpu_during_ours: gpu, ours, ours_kv_host: oursKvHost, ours_int4: oursInt4, torch_alongside_compile: torchPar, torch_alone: torchAlone, tokens: cmp, tokens_vs_torch_alongside: cmpPar };

  const compiled = phases.some((p) => p.name === 'compile' && p.status !== 'reused');
  const f0 = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(0) : '–');
  const f1 = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(1) : '–');
  const row = (what: string, r: GenRun | undefined) =>
    r ? `| ${what} | ${f0(r.end_to_end_ms)} | ${f0(r.image_encode_ms)} | ${f0(r.prefill_ms)} | ${f1(r.decode_tokens_per_s)} | ${f0(r.load_ms)} | ${f0(r.first_call_ms)} | ${f0(r.peak_rss_mb)} | ${f0(r.peak_gpu_mb)} |` : `| ${what} | (no result) | | | | | | | |`;
  const lines = [
    `# GPU check: ${settings.layout ?? '?'}${settings.layers ? ` (${settings.layers} layers per stack)` : ''}, ${settings.dtype ?? 'fp16'}, greedy ${tokens} tokens, batch 1${settings.dry_run === '1' ? ' — DRY RUN (no GPU)' : ''}`,
    '',
    `${settings.started ?? ''}; blip-graph \`--target ${settings.target ?? '?'}\` on \`--device ${settings.ours_device ?? '?'}\`; PyTorch on ${settings.torch_device ?? '?'} ${settings.torch_dtype ?? ''}; image ${settings.image ?? '?'}; prompt ${settings.prompt ? JSON.stringify(settings.prompt) : '(none: captioning)'}.`,
    '',
    '| phase | status | seconds | timeout | note |',
    '|---|---|---:|---:|---|',
    ...phases.map((p) => `| ${p.name} | ${p.status} | ${p.seconds} | ${p.timeout} | ${p.status === 'ok' ? '' : p.note} |`),
    '',
  ];
  if (make) lines.push(`checkpoint: ${make}`, '');
  if (compile.length) lines.push('```', ...compile, '```', '');
  if (probe) lines.push(`WebGPU probe (one Relu): ${probe.ok ? 'ran' : `failed: ${String(probe.error ?? '')}`}${probe.vulkan_loader ? `, Vulkan loader ${String(probe.vulkan_loader)}` : ''}`, '');
  if (kernels) lines.push(...kernelLines(kernels), '');
  lines.push(
    '| implementation | end-to-end ms | image encode ms | prefill ms | decode tok/s | load ms | first call ms | peak RSS MB | peak GPU MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    row(`blip-graph (${settings.ours_device ?? '?'}${ours?.providers ? `: ${Object.entries(ours.providers as Record<string, string>).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''})`, ours),
  );
  if (oursKvHost) lines.push(row(`blip-graph (${settings.ours_device ?? '?'}, KV cache through the host)`, oursKvHost));
  if (oursInt4) lines.push(row(`blip-graph (${settings.ours_device ?? '?'}, --quantize int4)`, oursInt4));
  lines.push(row(`${String(torchPar?.peer ?? 'PyTorch')} ${settings.torch_device ?? ''} ${settings.torch_dtype ?? ''}, ${compiled ? 'while the compile ran' : 'first run'}`, torchPar));
  if (torchAlone) lines.push(row(`${String(torchAlone.peer ?? 'PyTorch')} ${settings.torch_device ?? ''} ${settings.torch_dtype ?? ''}, alone`, torchAlone));
  lines.push('');
  if (gpu) lines.push(`GPU during blip-graph (nvidia-smi every 250 ms, ${gpu.samples} samples): memory.used up to ${gpu.maxMemoryMiB} MiB (the whole GPU, context included; PyTorch's peak GPU MB is torch.cuda.max_memory_allocated), utilization up to ${gpu.maxUtilization} %.`, '');
  if (ours?.sequences) lines.push(`blip-graph tokens: ${JSON.stringify(ours.sequences[0])}${Array.isArray(ours.texts) ? ` ${JSON.stringify(ours.texts[0])}` : ''}`);
  if (torch?.sequences) lines.push(`PyTorch new tokens: ${JSON.stringify(torch.sequences[0].slice(-tokens))}`);
  if (cmp) lines.push(`same tokens: ${cmp.same ? 'yes' : 'NO'} (leading tokens that agree: ${cmp.agree.join(', ')} of ${tokens})`);
  if (ours && torch && typeof ours.end_to_end_ms === 'number' && typeof torch.end_to_end_ms === 'number') {
    lines.push(`end-to-end blip-graph / PyTorch: ${(ours.end_to_end_ms / torch.end_to_end_ms).toFixed(2)}×`);
  }
  lines.push('');
  return { json, md: lines.join('\n') };
}

/** bench/gpu/kernels.ts's result: the cost of a node, and MultiHeadAttention against the CPU. */
function kernelLines(k: Record<string, unknown>): string[] {
  const e = (x: unknown) => (typeof x === 'number' ? x.toExponential(1) : '–');
  const n = (x: unknown, d: number) => (typeof x === 'number' ? x.toFixed(d) : '–');
  const out = [`Kernels on \`${String(k.device)}\` (bench/gpu/kernels.ts):`, ''];
  const what: Record<string, (w: string) => string> = {
    Add: (w) => `float16 Adds on (1, ${w})`,
    NormCast: (w) => `float16 residual + LayerNorms on (1, ${w}) as Add, Cast, LayerNormalization (float32), Cast (a link of 4 nodes)`,
    SkipNorm16: (w) => `float16 residual + LayerNorms on (1, ${w}) as one SkipLayerNormalization`,
    MatMul: (w) => `float16 MatMuls (1, ${w}) x (${w}, ${w})`,
    Gemm: (w) => `float16 Gemms (1, ${w}) x (${w}, ${w})ᵀ`,
    MatMulNBits4: (w) => `4-bit MatMulNBits (1, ${w}) x (${w}, ${w})`,
  };
  for (const [key, v] of Object.entries(k).filter(([key]) => key.startsWith('dispatch_'))) {
    const d = v as Record<string, unknown>;
    const kind = key.slice('dispatch_'.length);
    const label = (what[kind] ?? ((w: string) => `${kind} on (1, ${w})`))(String(d.width ?? '?'));
    const rate = d.weight_read_gb_s === undefined ? '' : `, weights read at ${n(d.weight_read_gb_s, 0)} GB/s`;
    out.push(`- a chain of ${String(d.nodes ?? '?')} ${label}: ${d.error ? `error: ${String(d.error)}` : `${n(d.per_node_us, 1)} us a ${kind === 'NormCast' ? 'link' : 'node'}${rate}`}`);
  }
  const rows = (k.attention as Array<Record<string, unknown>> | undefined) ?? [];
  if (rows.length) {
    out.push('', '| MultiHeadAttention vs CPU | heads x size | q | kv | max abs out | max abs present_key | ms |', '|---|---|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      out.push(`| ${String(r.elem)}${r.past ? ', past' : ''} | ${String(r.heads)}x${String(r.headSize)} | ${String(r.q)} | ${String(r.kv)} | ${r.error ? `error: ${String(r.error).slice(0, 80)}` : e(r.max_abs_out)} | ${r.past ? e(r.max_abs_present_key) : ''} | ${n(r.device_ms, 3)} |`);
    }
  }
  return out;
}

function main(argv: string[]): void {
  const a: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!a.work || !a.out) throw new Error('usage: summary.js --work DIR --out DIR');
  const { json, md } = summarize(a.work);
  mkdirSync(a.out, { recursive: true });
  writeFileSync(join(a.out, 'summary.json'), JSON.stringify(json, null, 2) + '\n');
  writeFileSync(join(a.out, 'summary.md'), md);
  if (a.print) process.stdout.write(md);
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2));
