import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from '../Command.js';
import { BlipError, UsageError } from '../Command.js';
import { unknownOption } from '../options.js';
import { isSystemError } from '../../filesystem.js';
import { byteSize, modelHeading, readManifest, type Manifest, type TensorIO } from '../../artifact/manifest.js';
import { decodeModel } from '../../lower/emitOnnx.js';
import { opHistogram } from '../../lower/graphCheck.js';

const command: Command = {
  name: 'inspect',
  summary: 'print a summary and the op histogram of a compiled model',
  help: `Usage: blip inspect OUTDIR [--json]

Reads the compiled model directory OUTDIR (written by 'blip compile'), validates its manifest,
and prints what it holds: task, family, dtype, target and quantization; each graph's inputs and
outputs (the KV cache once for all layers) and operator histogram; preprocessing, text
conventions, generation settings (grouped by where each came from: the graph, the checkpoint's
generation_config.json or the default), tokenizer, files and sizes. A directory without a valid
manifest.json is refused.

Options:
  --json   print JSON instead: {manifest, graphs: {name: {nodes, initializers, ops}}}, the
           manifest.json as it is and each graph's node and initializer counts and operator
           histogram

Examples:
  blip inspect ./out/caption
  blip inspect ./out/vqa --json`,
  async run(argv) {
    const json = argv.includes('--json');
    const rest = argv.filter((a) => a !== '--json');
    const bad = rest.find((a) => a.startsWith('-'));
    if (bad) throw unknownOption(bad, ['json']);
    if (rest.length !== 1) throw new UsageError('expected one OUTDIR');
    const dir = rest[0];
    const manifest = readManifest(dir);
    const graphs: Record<string, GraphStats> = {};
    for (const [name, g] of Object.entries(manifest.graphs)) {
      const model = readGraph(dir, g.file);
      const ops = opHistogram(model.graph!.node ?? []);
      graphs[name] = { nodes: model.graph!.node!.length, initializers: model.graph!.initializer?.length ?? 0, ops: Object.fromEntries(Object.entries(ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) };
    }
    if (json) {
      process.stdout.write(JSON.stringify({ manifest, graphs }, null, 2) + '\n');
      return 0;
    }
    process.stdout.write(summary(dir, manifest, graphs));
    return 0;
  },
};
export default command;

/** A graph file of the artifact, decoded; BLIP5004 when it is not an ONNX model with a graph (a copy cut short). */
function readGraph(dir: string, file: string): ReturnType<typeof decodeModel> {
  let model: ReturnType<typeof decodeModel> | undefined;
  let why = 'it has no graph';
  try {
    model = decodeModel(readFileSync(join(dir, file)));
  } catch (e) {
    if (isSystemError(e)) throw e;
    why = `it does not decode: ${(e as Error).message.split('\n')[0]}`;
  }
  if (!model?.graph?.node) throw new BlipError('BLIP5004', `${dir} is incomplete: ${file} is not an ONNX model (${why}); copy it again or recompile`);
  return model;
}

interface GraphStats {
  nodes: number;
  initializers: number;
  ops: Record<string, number>;
}

const fileSize = (path: string): string => {
  try {
    return byteSize(statSync(path).size);
  } catch {
    return '?';
  }
};
const tensor = (t: TensorIO): string => `${t.type}[${t.shape.join(', ')}]`;
const round = (x: number): string => String(Number(x.toPrecision(4)));

/**
 * A graph's inputs or outputs as [name, type and shape] rows, one a tensor; per-layer tensors that
 * differ only in their layer (past.0.key … past.31.value, all of one shape) are one row, so that a
 * 32-layer cache does not run to 64 lines.
 */
function tensorRows(xs: TensorIO[]): Array<[string, string]> {
  const groups = new Map<string, { prefix: string; layers: number[]; kinds: string[]; at: number; t: TensorIO }>();
  const rows: Array<[number, string, string]> = [];
  xs.forEach((x, i) => {
    const m = /^([A-Za-z_]+)\.(\d+)\.([A-Za-z_]+)$/.exec(x.name);
    if (!m) return rows.push([i, x.name, tensor(x)]);
    const key = `${m[1]} ${tensor(x)}`;
    const g = groups.get(key) ?? { prefix: m[1]!, layers: [], kinds: [], at: i, t: x };
    if (!g.layers.includes(Number(m[2]))) g.layers.push(Number(m[2]));
    if (!g.kinds.includes(m[3]!)) g.kinds.push(m[3]!);
    groups.set(key, g);
  });
  for (const g of groups.values()) {
    const ls = g.layers.sort((a, b) => a - b);
    const whole = ls.length === ls[ls.length - 1]! - ls[0]! + 1;
    const layers = ls.length === 1 ? String(ls[0]) : whole ? `{${ls[0]}..${ls[ls.length - 1]}}` : `{${ls.join(',')}}`;
    const kinds = g.kinds.length === 1 ? g.kinds[0]! : `{${g.kinds.join(',')}}`;
    rows.push([g.at, `${g.prefix}.${layers}.${kinds}`, `${tensor(g.t)}  (${ls.length} layer${ls.length === 1 ? '' : 's'} × ${g.kinds.length})`]);
  }
  return rows.sort((a, b) => a[0] - b[0]).map(([, n, t]) => [n, t]);
}

/**
 * The generation settings grouped by where each came from (the graph's generation block,
 * generation_config.json or transformers' default), groups in the order their first key comes:
 * `graph: max_new_tokens 30; generation_config.json: num_beams 1, do_sample false`.
 */
function generationRow(generation: NonNullable<Manifest['generation']>): string {
  const { source, ...settings } = generation;
  const groups = new Map<string, string[]>();
  for (const [k, v] of Object.entries(settings)) {
    const from = source[k] ?? ''; // (every key has one; an artifact edited by hand may lack it)
    groups.set(from, [...(groups.get(from) ?? []), `${k} ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`]);
  }
  return [...groups].map(([from, values]) => `${from ? `${from}: ` : ''}${values.join(', ')}`).join('; ');
}

/** The text view: what the manifest says, a line a fact (--json has the manifest itself). */
function summary(dir: string, m: Manifest, graphs: Record<string, GraphStats>): string {
  const rows: Array<[string, string]> = [];
  rows.push(['outputs', m.outputs.map((o) => `${o.name}: ${o.task} (${o.graph})`).join(', ')]);
  const p = m.preprocess;
  rows.push(['preprocess', `${p.do_resize ? `${p.image_size}×${p.image_size} ${p.resample}` : `no resize (${p.image_size})`}${p.do_normalize ? `, mean [${p.mean.map(round).join(', ')}], std [${p.std.map(round).join(', ')}]` : ', not normalized'}`]);
  const t = m.text;
  const ids = [t.bos_token_id !== undefined && `bos ${t.bos_token_id}`, `eos ${t.eos_token_id.join('/') || 'none'}`, `pad ${t.pad_token_id}`, t.sep_token_id !== undefined && `sep ${t.sep_token_id}`, t.decoder_start_token_id !== undefined && `decoder start ${t.decoder_start_token_id}`, t.image_token_id !== undefined && `image ${t.image_token_id}`].filter(Boolean);
  const limits = Object.entries(t.max_positions ?? {}).map(([k, v]) => `${v} ${k.replace('_', ' ')}`);
  rows.push(['text', [`${t.prompt_format} prompts`, `tokens ${ids.join(', ')}`, t.num_query_tokens !== undefined && `${t.num_query_tokens} query tokens`, limits.length && `at most ${limits.join(', ')} positions`].filter(Boolean).join('; ')]);
  if (m.decoder) {
    const d = m.decoder;
    rows.push(['decoder', `${d.layers} layers, ${d.kv_heads} KV heads × ${d.head_dim}, hidden ${d.hidden_size}, vocabulary ${d.vocab_size}; positions from ${d.positions}${d.cross_attention ? '; cross-attention' : ''}`]);
  }
  if (m.generation) rows.push(['generation', generationRow(m.generation)]);
  if (m.itm) rows.push(['itm', `match is logit ${m.itm.match_index}`]);
  for (const [label, tok] of [['tokenizer', m.tokenizer], ['Q-Former tokenizer', m.qformer_tokenizer]] as const) {
    if (tok) rows.push([label, tok.files.map((f) => `${join(tok.dir, f)} ${fileSize(join(dir, tok.dir, f))}`).join(', ')]);
  }
  rows.push(['weights', `${m.weights.file} ${byteSize(m.weights.bytes)}, ${m.weights.tensors} tensors, ${(m.weights.parameters / 1e6).toFixed(2)} M parameters`]);
  rows.push(['source', `${m.source.graph.file}, checkpoint ${m.source.checkpoint.dir} (${m.source.checkpoint.files.join(', ')})`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  const out = [`${dir}: ${modelHeading(m)}, compiled by blip-graph ${m.compiler.version}`, ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`), ''];
  for (const [name, g] of Object.entries(graphs)) {
    const entry = m.graphs[name as keyof typeof m.graphs]!;
    out.push(`${entry.file}: ${g.nodes} nodes, ${g.initializers} initializers, ${fileSize(join(dir, entry.file))}`);
    const io = [['inputs ', tensorRows(entry.inputs)], ['outputs', tensorRows(entry.outputs)]] as const;
    const nw = Math.max(...io.flatMap(([, rs]) => rs.map(([n]) => n.length)));
    for (const [label, rs] of io) rs.forEach(([n, t], i) => out.push(`  ${i === 0 ? label : ' '.repeat(label.length)}  ${n.padEnd(nw)}  ${t}`));
    const ow = Math.max(...Object.keys(g.ops).map((k) => k.length));
    out.push('  operators');
    for (const [op, n] of Object.entries(g.ops)) out.push(`    ${op.padEnd(ow)}  ${String(n).padStart(5)}`);
    out.push('');
  }
  return out.join('\n');
}
