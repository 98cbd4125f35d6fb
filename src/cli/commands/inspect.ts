import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from '../Command.js';
import { BlipError, UsageError } from '../Command.js';
import { isSystemError } from '../../filesystem.js';
import { readManifest } from '../../artifact/manifest.js';
import { decodeModel } from '../../lower/emitOnnx.js';
import { opHistogram } from '../../lower/graphCheck.js';

const command: Command = {
  name: 'inspect',
  summary: 'print the manifest and op histogram of a compiled model',
  help: `Usage: blip inspect OUTDIR [--json]

Reads the compiled model directory OUTDIR (written by 'blip compile'), validates its manifest,
and prints the manifest followed by each graph's inputs, outputs and operator histogram.
A directory without a valid manifest.json is refused.

Options:
  --json   print {manifest, graphs: {name: {nodes, initializers, ops}}} as JSON instead

Examples:
  blip inspect ./out/caption
  blip inspect ./out/vqa --json`,
  async run(argv) {
    const json = argv.includes('--json');
    const rest = argv.filter((a) => a !== '--json');
    const bad = rest.find((a) => a.startsWith('-'));
    if (bad) throw new UsageError(`unknown option '${bad}'`);
    if (rest.length !== 1) throw new UsageError('expected one OUTDIR');
    const dir = rest[0];
    const manifest = readManifest(dir);
    const graphs: Record<string, { nodes: number; initializers: number; ops: Record<string, number> }> = {};
    for (const [name, g] of Object.entries(manifest.graphs)) {
      const model = readGraph(dir, g.file);
      const ops = opHistogram(model.graph!.node ?? []);
      graphs[name] = { nodes: model.graph!.node!.length, initializers: model.graph!.initializer?.length ?? 0, ops: Object.fromEntries(Object.entries(ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) };
    }
    if (json) {
      process.stdout.write(JSON.stringify({ manifest, graphs }, null, 2) + '\n');
      return 0;
    }
    const out = [`${dir}: ${manifest.model} (${manifest.family} ${manifest.task}, ${manifest.dtype}), compiled by blip-graph ${manifest.compiler.version}`, '', 'manifest.json:', JSON.stringify(manifest, null, 2), ''];
    for (const [name, g] of Object.entries(graphs)) {
      const entry = manifest.graphs[name as keyof typeof manifest.graphs]!;
      const io = (xs: typeof entry.inputs) => xs.map((x) => `${x.name} ${x.type}[${x.shape.join(', ')}]`).join(', ');
      out.push(`${entry.file}: ${g.nodes} nodes, ${g.initializers} initializers`);
      out.push(`  inputs:  ${io(entry.inputs)}`);
      out.push(`  outputs: ${io(entry.outputs)}`);
      const w = Math.max(...Object.keys(g.ops).map((k) => k.length));
      for (const [op, n] of Object.entries(g.ops)) out.push(`  ${op.padEnd(w)}  ${String(n).padStart(5)}`);
      out.push('');
    }
    process.stdout.write(out.join('\n'));
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
