import type { Command } from '../Command.js';
import { UsageError } from '../Command.js';
import { loadProgram } from '../../syntax/load.js';
import { formatDiagnostics } from '../../diagnostics/format.js';
import type { IrModel } from '../../ir/types.js';

/** Graphviz DOT: inputs as ellipses, nodes as boxes (frozen ones grey), outputs as diamonds. */
export function toDot(m: IrModel): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [`digraph ${q(m.name)} {`, '  rankdir=LR;', '  node [fontname="Helvetica", fontsize=11];'];
  for (const i of m.inputs) lines.push(`  ${q(i.name)} [shape=ellipse, label=${q(`${i.name}\n${i.type}`)}];`);
  for (const n of m.nodes) {
    const style = n.frozen ? ', style=filled, fillcolor="#e8e8e8"' : '';
    lines.push(`  ${q(n.name)} [shape=box${style}, label=${q(`${n.name}\n${n.kind} @ ${n.checkpoint}`)}];`);
    for (const e of n.edges) lines.push(`  ${q(e.from)} -> ${q(n.name)}${e.port ? ` [label=${q(e.port)}]` : ''};`);
  }
  for (const o of m.outputs) {
    const id = `output:${o.name}`;
    lines.push(`  ${q(id)} [shape=diamond, label=${q(`${o.name}\n${o.task}`)}];`);
    for (const a of o.args) lines.push(`  ${q(a)} -> ${q(id)};`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

const command: Command = {
  name: 'graph',
  summary: 'print the checked graph of a .blip file as Graphviz DOT or IR JSON',
  help: `Usage: blip graph FILE [--format dot|json] [--model NAME]

Checks FILE like 'blip check' and prints each model's graph after imports and 'extends' are
resolved: inputs, nodes (kind, checkpoint prefix, frozen) in dependency order, edges with their
ports, outputs. --format dot (default) is Graphviz; --format json is the IR the compiler reads
(src/ir/types.ts). Diagnostics go to stderr; exit 1 if there are errors.

Options:
  --format F   dot or json
  --model NAME only this model of the file

Examples:
  blip graph graphs/instructblip-t5.blip | dot -Tsvg > instructblip-t5.svg
  blip graph --format json graphs/pinned/blip2-opt-2.7b.blip`,
  async run(argv) {
    let format = 'dot';
    let only: string | undefined;
    const files: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '--format') format = argv[++i] ?? '';
      else if (a === '--model') only = argv[++i];
      else if (a.startsWith('-')) throw new UsageError(`unknown option '${a}'`);
      else files.push(a);
    }
    if (format !== 'dot' && format !== 'json') throw new UsageError(`--format expects dot or json, found '${format}'`);
    if (files.length !== 1) throw new UsageError('expected one FILE');
    const r = loadProgram(files[0]);
    process.stderr.write(formatDiagnostics(r.diagnostics, r.sources));
    if (!r.program) return 1;
    const models = r.program.models.filter((m) => !only || m.name === only);
    if (!models.length) throw new UsageError(`no model '${only}' in ${files[0]}: expected one of ${r.program.models.map((m) => m.name).join(', ')}`);
    if (format === 'json') process.stdout.write(JSON.stringify(only ? models[0] : { ...r.program, models }, null, 2) + '\n');
    else process.stdout.write(models.map(toDot).join('\n'));
    return 0;
  },
};
export default command;
