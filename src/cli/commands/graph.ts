import type { Command } from '../Command.js';
import { UsageError } from '../Command.js';
import { valueOptions } from '../options.js';
import { nearest } from '../main.js';
import { loadProgram } from '../../syntax/load.js';
import { formatDiagnostics, type Sources } from '../../diagnostics/format.js';
import type { Diagnostic } from '../../diagnostics/Diagnostic.js';
import type { IrModel } from '../../ir/types.js';
import type { Attrs } from '../../nodes/NodeKind.js';
import { describeModel, toDotGraph, toMermaid, toSvg } from '../../draw/index.js';
import { Checkpoint } from '../../weights/checkpoint.js';
import { resolveNodes } from '../../lower/resolve.js';
import { pairingProblems } from '../../lower/pairing.js';
import { isCheckpointFolder, shippedGraphArg } from '../shippedGraphArg.js';

/** Each node's attributes resolved against a checkpoint's config.json and tensor shapes (headers only). */
function resolveAgainst(m: IrModel, dir: string, graphFile: string, sources: Sources): Record<string, Attrs> {
  const ckpt = Checkpoint.open(dir);
  try {
    const { nodes, problems } = resolveNodes(m, ckpt);
    const all = new Set(m.nodes.map((n) => n.name));
    // what compile would refuse, as located warnings: the drawing is still made
    const found = [...pairingProblems(m, all, ckpt.config, ckpt.keys(), graphFile), ...problems];
    const located: Diagnostic[] = found.filter((p) => p.loc).map((p) => ({ code: p.code, severity: 'warning', message: p.message, loc: p.loc! }));
    for (const p of found.filter((p) => !p.loc)) process.stderr.write(`warning ${p.code}: ${p.message}\n`);
    if (located.length) process.stderr.write(formatDiagnostics(located, sources));
    return Object.fromEntries([...nodes].map(([name, r]) => [name, r.attrs]));
  } finally {
    ckpt.close();
  }
}

const FORMATS = ['dot', 'svg', 'mermaid', 'json'];

const command: Command = {
  name: 'graph',
  summary: 'draw the composition of a .blip file (SVG, Mermaid or Graphviz DOT) or print its IR JSON',
  help: `Usage: blip graph [FILE] [--format svg|mermaid|dot|json] [--weights DIR] [--model NAME]

Checks FILE like 'blip check' and draws each model after imports and 'extends' are resolved:
inputs, nodes with kind, width, depth, frozen or trainable and checkpoint prefix, edges with the
port and the shape of the tensor along them, outputs. Widths and depths are the ones the file
pins; --weights DIR resolves the rest from the checkpoint's config.json and tensor headers (no
weights are read); sizes known from neither are drawn as '?'. With --weights and no FILE, the
shipped graph for the checkpoint's class (config.json "architectures") is drawn, as 'blip compile'
takes it.

  --format svg      a self-contained SVG picture, laid out in-process (no Graphviz needed)
  --format mermaid  a Mermaid flowchart (paste into a \`\`\`mermaid block on GitHub); several
                    models are one flowchart, a subgraph each
  --format dot      Graphviz DOT (default; render with 'dot -Tsvg' if you have Graphviz)
  --format json     the IR the compiler reads (src/ir/types.ts)

Diagnostics go to stderr; exit 1 if there are errors.

Options:
  --format F     svg, mermaid, dot or json
  --weights DIR  a HuggingFace checkpoint folder to read sizes from (config.json, safetensors headers)
  --model NAME   only this model of the file

Examples:
  blip graph graphs/pinned/blip2-opt-2.7b.blip --format svg > blip2-opt-2.7b.svg
  blip graph graphs/blip2-opt.blip --weights ./blip2-opt-2.7b --format svg > blip2-opt.svg
  blip graph graphs/instructblip-vicuna.blip --format mermaid
  blip graph graphs/instructblip-t5.blip | dot -Tpng > instructblip-t5.png
  blip graph --format json graphs/pinned/blip2-opt-2.7b.blip`,
  async run(argv) {
    // read as 'blip compile' reads its options: --name VALUE or --name=VALUE, each once
    const { values, positionals: files } = valueOptions(argv, ['format', 'weights', 'model']);
    const { format = 'dot', model: only, weights } = values;
    if (!FORMATS.includes(format)) {
      const hint = nearest(format, FORMATS);
      throw new UsageError(`--format expects one of ${FORMATS.join(', ')}, found '${format}'${hint ? ` (did you mean ${hint}?)` : ''}`);
    }
    if (weights === '') throw new UsageError('--weights expects a checkpoint directory');
    if (files.length === 0 && weights !== undefined) files.push(shippedGraphArg('graph', weights));
    if (files.length === 1 && weights === undefined && isCheckpointFolder(files[0])) {
      throw new UsageError(`${files[0]} is a checkpoint folder: give it as --weights ${files[0]} (the graph drawn is then the shipped one for its config.json, or name one before it)`);
    }
    if (files.length !== 1) throw new UsageError('expected one FILE');
    const r = loadProgram(files[0]);
    process.stderr.write(formatDiagnostics(r.diagnostics, r.sources));
    if (!r.program) return 1;
    const models = r.program.models.filter((m) => !only || m.name === only);
    if (!models.length) throw new UsageError(`no model '${only}' in ${files[0]}: expected one of ${r.program.models.map((m) => m.name).join(', ')}`);
    if (format === 'json') {
      process.stdout.write(JSON.stringify(only ? models[0] : { ...r.program, models }, null, 2) + '\n');
      return 0;
    }
    const graphs = models.map((m) => describeModel(m, weights === undefined ? undefined : resolveAgainst(m, weights, files[0], r.sources)));
    if (format === 'svg') process.stdout.write(toSvg(graphs));
    else if (format === 'mermaid') process.stdout.write(toMermaid(graphs)); // one diagram, a subgraph per model
    else process.stdout.write(graphs.map(toDotGraph).join('\n'));
    return 0;
  },
};
export default command;
