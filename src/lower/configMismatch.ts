// One config.json size that disagrees with the weights (text_config.hidden_size 48 over 32-wide
// tensors) makes nearly every tensor of the node misshapen, and can make it expect tensors the
// checkpoint never had (OPT's project_in / project_out when the width and the embedding width
// differ): a line per tensor hides the cause. When the first misshapen tensor differs in one size,
// (nearly) every tensor of the node carrying that size disagrees the same way, and one attribute
// config.json gave the node has that size, the node's tensor problems become one line naming the
// key, what it says and what the tensors say. A depth that disagrees (num_hidden_layers 1 over two
// layers) is one such line too: every problem is a tensor of the layers one side has and the other
// lacks. Anything less clear (one corrupt tensor among forty that fit, two attributes of that size)
// stays a line per tensor: naming the wrong cause is worse than naming none.
import type { Problem } from './CompileError.js';
import type { ResolvedNode } from './resolve.js';

/** A tensor a node asked for: the shape its attributes imply, and the checkpoint's (undefined: missing). */
export interface TensorRead {
  expected: number[];
  found?: number[];
}

/** Edits `problems` in place. `reads`: per node, the tensors it asked for; `tensorOf`: the tensor a BLIP4010/4011 is about. */
export function summarizeConfigMismatch(nodes: Map<string, ResolvedNode>, problems: Problem[], reads: Map<string, Map<string, TensorRead>> = new Map(), tensorOf: WeakMap<Problem, string> = new WeakMap(), checkpointKeys: string[] = []): void {
  for (const r of nodes.values()) {
    if (!summarizeWidth(r, problems, reads.get(r.node.name))) summarizeDepth(r, problems, reads.get(r.node.name), tensorOf, checkpointKeys);
  }
}

/** The attributes config.json gave `r` with value `v`, as [attribute, config key]. */
function keyedWith(r: ResolvedNode, v: number): Array<readonly [string, string]> {
  return Object.keys(r.attrs)
    .filter((a) => r.attrs[a] === v)
    .map((a) => [a, r.configKey?.(a)] as const)
    .filter((x): x is readonly [string, string] => x[1] !== undefined);
}

function summarizeWidth(r: ResolvedNode, problems: Problem[], reads: Map<string, TensorRead> | undefined): boolean {
  const mine = problems.filter((p) => (p.code === 'BLIP4010' || p.code === 'BLIP4012') && p.loc === r.node.loc);
  // no minimum count: a size one tensor alone carries (a tied vocab_size, num_query_tokens) is still
  // config.json's fault when that tensor is all that carries it; the carriers and one-attribute rules
  // below keep the odd corrupt tensor among many, or a size two attributes share, a BLIP4012
  if (mine.length === 0 || (mine.length === 1 && !reads)) return false; // (without reads the carriers rule cannot speak for one tensor)
  const first = mine.find((p) => p.shape);
  if (!first?.shape || first.shape.found.length !== first.shape.expected.length) return false;
  const { key, found, expected } = first.shape;
  const differ = expected.map((d, i) => [d, found[i]!] as const).filter(([e, f]) => e !== f);
  const [said, real] = differ[0] ?? [];
  if (said === undefined || differ.some(([e, f]) => e !== said || f !== real)) return false;
  // config.json is wrong only if (nearly) every tensor that size should give disagrees: the odd
  // corrupt tensor among many that fit is the tensor's fault (BLIP4012 names it)
  if (reads) {
    const carriers = [...reads.values()].filter((t) => t.found && t.expected.includes(said));
    const misfit = carriers.filter((t) => t.found!.join(',') !== t.expected.join(','));
    if (misfit.length < 0.8 * carriers.length) return false;
  }
  // the attribute config.json gave that size; where several share it, the width (which sizes most
  // tensors) when it is among them, otherwise no guess
  const keyed = keyedWith(r, said);
  const chosen = keyed.length === 1 ? keyed[0] : keyed.find(([a]) => a === 'width');
  if (!chosen) return false;
  const [attr, configKey] = chosen;
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
  return true;
}

/** A layer's tensor as its stack (`qformer.encoder.layer`) and index, from the first numeric part of the key. */
function layerOf(key: string): { stack: string; index: number } | undefined {
  const m = /^(.+?)\.(\d+)\./.exec(key);
  return m ? { stack: m[1]!, index: Number(m[2]) } : undefined;
}

function summarizeDepth(r: ResolvedNode, problems: Problem[], reads: Map<string, TensorRead> | undefined, tensorOf: WeakMap<Problem, string>, checkpointKeys: string[]): void {
  const mine = problems.filter((p) => (p.code === 'BLIP4010' || p.code === 'BLIP4011') && p.loc === r.node.loc);
  if (mine.length < 2 || !reads) return;
  const layers = mine.map((p) => layerOf(tensorOf.get(p) ?? ''));
  const stack = layers[0]?.stack;
  if (!stack || layers.some((l) => l?.stack !== stack)) return;
  const depthOf = (keys: Iterable<string>) => Math.max(0, ...[...keys].map(layerOf).filter((l) => l?.stack === stack).map((l) => l!.index + 1));
  const said = depthOf(reads.keys());
  const real = depthOf(checkpointKeys);
  // every problem is a tensor of the layers past the shallower of the two, and nothing else is wrong
  if (said === real || layers.some((l) => l!.index < Math.min(said, real))) return;
  // the depth attribute config.json gave (T5's decoder_depth for its decoder's stack)
  const depths = keyedWith(r, said).filter(([a]) => a.includes('depth'));
  const chosen = depths.length === 1 ? depths[0] : depths.find(([a]) => a.includes('decoder') === /(^|\.)decoder\./.test(stack + '.'));
  if (!chosen) return;
  const [attr, configKey] = chosen;
  const at = problems.indexOf(mine[0]!);
  for (const p of mine) problems.splice(problems.indexOf(p), 1);
  const what = said < real ? `${mine.length} of its tensors not read, e.g. "${tensorOf.get(mine[0]!)}"` : `${mine.length} expected tensors missing, e.g. "${tensorOf.get(mine[0]!)}"`;
  problems.splice(at, 0, {
    code: 'BLIP4017',
    message: `config.json "${configKey}" says ${said} for attribute "${attr}" of node "${r.node.name}" (${r.node.kind}), but the checkpoint has ${real} layer${real === 1 ? '' : 's'} under "${stack}." (${what}); config.json does not describe these weights: correct it`,
    loc: r.node.loc,
  });
}
