// A projection node whose kind does not match the tensors at its prefix: `mlp` over BLIP-2's
// single `language_projection.weight` / `.bias` (a linear layer), or `linear` over LLaVA-style
// `linear_1` / `linear_2`. Without this the mlp's widths are "not pinned" (they come from its
// tensors), and pinned they are a missing and an unread tensor each. One line names the layout
// the checkpoint has and the kind that reads it. Asked with the other pairing questions, before
// any size is resolved.
import type { IrModel } from '../ir/types.js';
import { nodeKinds } from '../nodes/index.js';
import type { Problem } from './CompileError.js';

export function projectionLayoutProblems(model: IrModel, used: Set<string>, shape: (key: string) => number[] | undefined, keys: string[]): Problem[] {
  const problems: Problem[] = [];
  for (const node of model.nodes) {
    const kind = nodeKinds[node.kind];
    if (!used.has(node.name) || !kind?.fromShapes || kind.output !== 'features' || !node.checkpoint) continue;
    if (Object.keys(kind.fromShapes(shape, node.checkpoint)).length) continue; // its own layout is there
    // another shape-sized kind with the same ports and output that reads what is there
    const fits = Object.values(nodeKinds).filter(
      (k) => k !== kind && k.fromShapes && k.output === kind.output && k.ports.map((p) => p.name).join() === kind.ports.map((p) => p.name).join() && Object.keys(k.fromShapes(shape, node.checkpoint)).length,
    );
    if (!fits.length) continue;
    const held = keys.filter((k) => k.startsWith(`${node.checkpoint}.`)).map((k) => k.slice(node.checkpoint.length + 1));
    const layout = (k: typeof kind) => (k.layout ? ` (${k.layout})` : '');
    problems.push({
      code: 'BLIP4019',
      message: `node "${node.name}" is ${node.kind}${layout(kind)}, but the checkpoint has ${held.map((k) => `"${node.checkpoint}.${k}"`).join(', ')}, the layout of ${fits.map((k) => `${k.kind}${layout(k)}`).join(' or ')}: write ${fits[0]!.kind}(…) for this checkpoint`,
      loc: node.loc,
    });
  }
  return problems;
}
