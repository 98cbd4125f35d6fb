// Mermaid flowchart of described models (src/draw/describe.ts): renders on GitHub and in most
// Markdown viewers inside a ```mermaid block.
import type { DrawGraph } from './describe.js';
import { edgeLabel } from './svg.js';

/** Mermaid ids are restricted; labels go in quotes with `"` written as #quot;. */
const vertexId = (s: string) => 'v_' + s.replace(/[^A-Za-z0-9_]/g, (c) => `_${c.charCodeAt(0).toString(16)}_`);
const label = (s: string) => s.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');

/**
 * One flowchart. Several models (a file that declares several) are one subgraph each, their ids
 * prefixed m0_, m1_, …: one diagram a ```mermaid block renders, where a flowchart per model would
 * be one block with two headers and the same ids, which Mermaid refuses.
 */
export function toMermaid(graphs: DrawGraph | DrawGraph[]): string {
  const list = Array.isArray(graphs) ? graphs : [graphs];
  const out = ['flowchart TB'];
  const [frozen, trainable, io]: string[][] = [[], [], []];
  list.forEach((g, i) => {
    const single = list.length === 1;
    const id = (s: string) => (single ? '' : `m${i}_`) + vertexId(s);
    const pad = single ? '  ' : '    ';
    out.push(`  %% ${g.name} (blip graph --format mermaid)`);
    if (!single) out.push(`  subgraph m${i} ["${label(g.name)}"]`);
    for (const v of g.vertices) {
      if (v.role === 'input') out.push(`${pad}${id(v.id)}(["<b>${label(v.name)}: ${v.kind}</b><br/>${label(v.detail)}"])`);
      else if (v.role === 'output') out.push(`${pad}${id(v.id)}{{"<b>output ${label(v.name)}</b><br/>${label(v.detail)}"}}`);
      else out.push(`${pad}${id(v.id)}["<b>${label(v.name)}: ${v.kind}</b><br/>${label(v.detail)}<br/><i>${label(v.note)}</i>"]`);
    }
    for (const e of g.edges) {
      const text = edgeLabel(e.port, e.shape);
      out.push(text ? `${pad}${id(e.from)} -- "${label(text)}" --> ${id(e.to)}` : `${pad}${id(e.from)} --> ${id(e.to)}`);
    }
    if (!single) out.push('  end');
    for (const v of g.vertices) (v.role !== 'node' ? io : v.frozen ? frozen : trainable).push(id(v.id));
  });
  out.push('  classDef frozen fill:#e5e7eb,stroke:#6b7280,stroke-dasharray:6 3');
  out.push('  classDef trainable fill:#dbeafe,stroke:#2563eb,stroke-width:2px');
  out.push('  classDef io fill:#f9fafb,stroke:#9ca3af');
  if (frozen.length) out.push(`  class ${frozen.join(',')} frozen`);
  if (trainable.length) out.push(`  class ${trainable.join(',')} trainable`);
  if (io.length) out.push(`  class ${io.join(',')} io`);
  return out.join('\n') + '\n';
}
