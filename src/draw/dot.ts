// Graphviz DOT of a described model (src/draw/describe.ts), for users who have Graphviz:
// `blip graph FILE | dot -Tsvg`. Inputs as ellipses, nodes as boxes (frozen ones grey), outputs
// as diamonds; edges between nodes carry the port and the tensor shape.
import type { DrawGraph } from './describe.js';
import { edgeLabel } from './svg.js';

export function toDotGraph(g: DrawGraph): string {
  const q = (s: string) => JSON.stringify(s);
  // Inputs and outputs keep their bare names as DOT ids ("image", "output:text"), as before.
  const name = (vid: string) => (vid.startsWith('input:') ? vid.slice('input:'.length) : vid);
  const lines = [`digraph ${q(g.name)} {`, '  rankdir=LR;', '  node [fontname="Helvetica", fontsize=11];', '  edge [fontname="Helvetica", fontsize=10];'];
  for (const v of g.vertices) {
    if (v.role === 'input') lines.push(`  ${q(name(v.id))} [shape=ellipse, label=${q(`${v.name}\n${v.kind} ${v.detail.replace(/^\S+ /, '')}`)}];`);
    else if (v.role === 'output') lines.push(`  ${q(v.id)} [shape=diamond, label=${q(`${v.name}\n${v.kind}`)}];`);
    else {
      const style = v.frozen ? ', style="filled,dashed", fillcolor="#e8e8e8"' : '';
      lines.push(`  ${q(v.id)} [shape=box${style}, label=${q(`${v.name}\n${v.kind} · ${v.detail}\n${v.note}`)}];`);
    }
  }
  for (const e of g.edges) {
    const text = edgeLabel(e.port, e.shape);
    lines.push(`  ${q(name(e.from))} -> ${q(e.to)}${text ? ` [label=${q(text)}]` : ''};`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
