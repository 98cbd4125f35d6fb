// One config.json size that disagrees with the weights (text_config.hidden_size 48 over 32-wide
// tensors) makes nearly every tensor of the node misshapen, and can make it expect tensors the
// checkpoint never had (OPT's project_in / project_out when the width and the embedding width
// differ): a line per tensor hides the cause. When the first misshapen tensor differs in one size,
// and that size is an attribute config.json gave the node, the node's tensor problems become one
// line naming the key, what it says and what the tensors say.
import type { Problem } from './CompileError.js';
import type { ResolvedNode } from './resolve.js';

/** Edits `problems` in place. */
export function summarizeConfigMismatch(nodes: Map<string, ResolvedNode>, problems: Problem[]): void {
  for (const r of nodes.values()) {
    const mine = problems.filter((p) => (p.code === 'BLIP4010' || p.code === 'BLIP4012') && p.loc === r.node.loc);
    const first = mine.find((p) => p.shape);
    if (!first?.shape || first.shape.found.length !== first.shape.expected.length) continue;
    const { key, found, expected } = first.shape;
    const differ = expected.map((d, i) => [d, found[i]!] as const).filter(([e, f]) => e !== f);
    const [said, real] = differ[0] ?? [];
    if (said === undefined || differ.some(([e, f]) => e !== said || f !== real)) continue;
    // the attribute config.json gave that size (width before the others when two share it)
    const keyed = Object.keys(r.attrs)
      .filter((a) => r.attrs[a] === said)
      .map((a) => [a, r.configKey?.(a)] as const)
      .filter((x): x is readonly [string, string] => x[1] !== undefined)
      .sort(([a], [b]) => Number(b === 'width') - Number(a === 'width'))[0];
    if (!keyed) continue;
    const [attr, configKey] = keyed;
    const at = problems.indexOf(mine[0]!);
    for (const p of mine) problems.splice(problems.indexOf(p), 1);
    const misshapen = mine.filter((p) => p.code === 'BLIP4012').length;
    const missing = mine.length - misshapen;
    const counts = `${misshapen} of its tensors misshapen${missing ? `, ${missing} expected ones missing` : ''}`;
    problems.splice(at, 0, {
      code: 'BLIP4017',
      message: `config.json "${configKey}" says ${said} for attribute "${attr}" of node "${r.node.name}" (${r.node.kind}), but its tensors say ${real}: "${key}" is [${found.join(', ')}], not the [${expected.join(', ')}] ${said} makes (${counts}); config.json does not describe these weights: correct it`,
      loc: r.node.loc,
    });
  }
}
