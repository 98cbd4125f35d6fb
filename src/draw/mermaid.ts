// Mermaid flowchart of a described model (src/draw/describe.ts): renders on GitHub and in most
// Markdown viewers inside a ```mermaid block.
import type { DrawGraph } from './describe.js';
import { edgeLabel } from './svg.js';

/** Mermaid ids are restricted; labels go in quotes with `"` written as #quot;. */
const id = (s: string) => 'v_' + s.replace(/[^A-Za-z0-9_]/g, (c) => `_${c.charCodeAt(0).toString(16)}_`);
const label = (s: string) => s.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');

export function toMermaid(g: DrawGraph): string {
  const out = ['flowchart TB', `  %% ${g.name} (blip graph --format mermaid)`];
  for (const v of g.vertices) {
    if (v.role === 'input') out.push(`  ${id(v.id)}(["<b>${label(v.name)}: ${v.kind}</b><br/>${label(v.detail)}"])`);
    else if (v.role === 'output') out.push(`  ${id(v.id)}{{"<b>output ${label(v.name)}</b><br/>${label(v.detail)}"}}`);
    else out.push(`  ${id(v.id)}["<b>${label(v.name)}: ${v.kind}</b><br/>${label(v.detail)}<br/><i>${label(v.note)}</i>"]`);
  }
  for (const e of g.edges) {
    const text = edgeLabel(e.port, e.shape);
    out.push(text ? `  ${id(e.from)} -- "${label(text)}" --> ${id(e.to)}` : `  ${id(e.from)} --> ${id(e.to)}`);
  }
  const frozen = g.vertices.filter((v) => v.role === 'node' && v.frozen).map((v) => id(v.id));
  const trainable = g.vertices.filter((v) => v.role === 'node' && !v.frozen).map((v) => id(v.id));
  out.push('  classDef frozen fill:#e5e7eb,stroke:#6b7280,stroke-dasharray:6 3');
  out.push('  classDef trainable fill:#dbeafe,stroke:#2563eb,stroke-width:2px');
  out.push('  classDef io fill:#f9fafb,stroke:#9ca3af');
  if (frozen.length) out.push(`  class ${frozen.join(',')} frozen`);
  if (trainable.length) out.push(`  class ${trainable.join(',')} trainable`);
  const io = g.vertices.filter((v) => v.role !== 'node').map((v) => id(v.id));
  if (io.length) out.push(`  class ${io.join(',')} io`);
  return out.join('\n') + '\n';
}
