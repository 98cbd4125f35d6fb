// Attribute resolution at compile time: every node's attributes are what the .blip file pins, else
// what the checkpoint says (its config.json section as transformers reads it, left-out keys taking
// the config class's defaults: ../weights/transformersConfig.ts; or the shapes of its tensors for
// kinds without a section), else the kind's lowering defaults. A pinned attribute that disagrees with the
// checkpoint is an error at the attribute's location: the file describes a different model than
// the weights hold, and compiling anyway would produce garbage or a shape error far from the cause.
import type { IrModel, IrNode, IrValue } from '../ir/types.js';
import type { Attrs, NodeKind } from '../nodes/NodeKind.js';
import { nodeKinds } from '../nodes/index.js';
import type { Problem } from './CompileError.js';
import { checkAttrs, kindSchemaId } from '../ir/validate.js';
import { configClassOf, effectiveConfig, nullProblems } from '../weights/transformersConfig.js';

export interface ResolvedNode {
  node: IrNode;
  kind: NodeKind;
  attrs: Attrs;
  /** Where each attribute came from: "the file", a config.json section, a class default, tensor shapes, the kind's default. */
  from: Record<string, string>;
  /**
   * For an attribute config.json gives (not the file): the key it was read from
   * ("text_config.hidden_size", "num_query_tokens"); found when a message asks.
   */
  configKey?: (attr: string) => string | undefined;
}

/**
 * Which key of the node's config section (or of the top level) gives `attr`, and its value: the one
 * whose removal changes what the kind reads. Asked only when a message names it, so trying each key
 * is cheap.
 */
export function configSourceOf(kind: NodeKind, sectionName: string, section: Record<string, unknown>, root: Record<string, unknown>, attr: string): { key: string; value: unknown } | undefined {
  const read = (s: Record<string, unknown>, r: Record<string, unknown>) => JSON.stringify(kind.fromConfig!(s, r)[attr]);
  const base = read(section, root);
  if (base === undefined) return undefined;
  const drop = (o: Record<string, unknown>, k: string) => Object.fromEntries(Object.entries(o).filter(([x]) => x !== k));
  for (const k of Object.keys(section)) if (read(drop(section, k), root) !== base) return { key: sectionName ? `${sectionName}.${k}` : k, value: section[k] };
  if (sectionName) for (const k of Object.keys(root)) if (read(section, drop(root, k)) !== base) return { key: k, value: root[k] };
  return undefined;
}

export interface CheckpointView {
  config: Record<string, unknown>;
  shape(key: string): number[] | undefined;
}

const show = (v: IrValue | undefined) => JSON.stringify(v);

export function resolveNodes(model: IrModel, ckpt: CheckpointView): { nodes: Map<string, ResolvedNode>; problems: Problem[] } {
  const nodes = new Map<string, ResolvedNode>();
  const problems: Problem[] = [];
  // Keys config.json leaves out mean their config class's defaults, as in transformers.
  const effective = effectiveConfig(ckpt.config);
  const asObject = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const without = (o: Record<string, unknown>, keys: Set<string> | undefined) => (keys ? Object.fromEntries(Object.entries(o).filter(([k]) => !keys.has(k))) : o);
  const rootFilled = effective.filled.get('')?.keys;
  const givenRoot = without(effective.config, rootFilled);
  // null where transformers' typed config fields take none: refused there, so here too
  for (const [section, key] of nullProblems(ckpt.config)) {
    const at = model.nodes.find((n) => (n.config ?? nodeKinds[n.kind]?.defaultConfig) === section) ?? model.nodes[0];
    problems.push({
      code: 'BLIP4017',
      message: `config.json ${section ? `"${section}" ` : ''}${key} is null, which transformers refuses (${configClassOf(ckpt.config, section)} takes no None there): write the value, or leave the key out for the class's default`,
      loc: at?.loc ?? model.loc,
    });
  }
  for (const node of model.nodes) {
    const kind = nodeKinds[node.kind];
    if (!kind?.lowering) {
      problems.push({ code: 'BLIP4015', message: `node "${node.name}": kind "${node.kind}" cannot be compiled yet`, loc: node.loc });
      continue;
    }
    const sectionName = node.config ?? kind.defaultConfig;
    const section = sectionName === undefined ? undefined : asObject(sectionName === '' ? effective.config : effective.config[sectionName]);
    const raw = sectionName ? ckpt.config[sectionName] : undefined;
    if (sectionName && !section && raw !== undefined && raw !== null) {
      problems.push({ code: 'BLIP4017', message: `config.json "${sectionName}" is ${JSON.stringify(raw)}, where node "${node.name}" (${node.kind}) expects an object of settings`, loc: node.loc });
    }
    const sources: Array<[string, Attrs]> = [];
    /** The config.json key an attribute the file gives was read from ("text_config.hidden_size", "num_query_tokens"). */
    let sourceOf: (attr: string) => { key: string; value: unknown } | undefined = () => undefined;
    if (section && kind.fromConfig) {
      const filled = effective.filled.get(sectionName!);
      const givenSection = without(section, filled?.keys);
      const given = kind.fromConfig(givenSection, givenRoot);
      sourceOf = (attr) => configSourceOf(kind, sectionName!, givenSection, givenRoot, attr);
      sources.push([`config.json "${sectionName || '(top level)'}"`, given]);
      if (filled || rootFilled) {
        // credited to the class whose default it is: the section's, or the top level's (queries)
        const newIn = (found: Attrs, seen: Attrs) => Object.fromEntries(Object.entries(found).filter(([a]) => !(a in seen)));
        const fromSection = newIn(kind.fromConfig(section, givenRoot), given);
        const fromRoot = newIn(newIn(kind.fromConfig(section, effective.config), given), fromSection);
        if (filled && Object.keys(fromSection).length) sources.push([`transformers' ${filled.cls} default (config.json "${sectionName || '(top level)'}" leaves it out)`, fromSection]);
        if (rootFilled && Object.keys(fromRoot).length) sources.push([`transformers' ${effective.filled.get('')!.cls} default (config.json leaves it out at its top level)`, fromRoot]);
      }
    }
    // (named as one thing: messages go on '… says N', '… gives N')
    if (kind.fromShapes) sources.push([`the checkpoint (the shapes of its "${node.checkpoint}.*" tensors)`, kind.fromShapes((k) => ckpt.shape(k), node.checkpoint)]);

    // What the checkpoint says must fit the kind's schema as a pinned value would (the checker
    // validated those): an activation the lowering does not know, a list where a size belongs or a
    // patch of 1e30 pixels is reported here, as the checkpoint's, instead of failing in the lowering
    // or as a shape error. Such values are dropped; the compile stops on these problems anyway.
    for (const [i, [where, found]] of sources.entries()) {
      const unpinned = Object.fromEntries(Object.entries(found).filter(([a]) => !(a in node.attrs)));
      for (const p of checkAttrs(kindSchemaId(node.kind), unpinned)) {
        const attr = String(p.path[0]);
        if (p.code === 'BLIP3001') continue; // lowering-only facts (placeholders, queries, …) are not in the schema
        // a value read from the top level (BLIP-2's num_query_tokens) is named by its key, not by the section
        const key = i === 0 && sectionName ? sourceOf(attr)?.key : undefined;
        const at = key !== undefined && !key.startsWith(`${sectionName}.`) ? `config.json "${key}"` : where;
        problems.push({
          code: 'BLIP4017',
          message: `${at} gives ${show(found[attr])} for attribute "${attr}" of node "${node.name}" (${node.kind}), which expects ${p.expected}`,
          loc: node.loc,
        });
        delete found[attr];
      }
    }

    for (const [attr, pinned] of Object.entries(node.attrs)) {
      for (const [i, [where, found]] of sources.entries()) {
        if (attr in found && found[attr] !== pinned) {
          const source = i === 0 ? sourceOf(attr) : undefined;
          // a value derived from the key (final_norm from _remove_final_layer_norm, placeholders from
          // image_token_index) is told apart from the key's own value
          const says = !source
            ? `${where} says ${show(found[attr])}`
            : JSON.stringify(source.value) === JSON.stringify(found[attr])
              ? `config.json "${source.key}" says ${show(found[attr])}`
              : `config.json "${source.key}" is ${JSON.stringify(source.value)}, so ${attr} is ${show(found[attr])}`;
          problems.push({
            code: 'BLIP4013',
            message: `attribute "${attr}" of node "${node.name}" is pinned to ${show(pinned)}, but ${says}: the file describes another model than the checkpoint holds`,
            loc: node.attrLocs[attr] ?? node.loc,
          });
          break;
        }
      }
    }
    const attrs: Attrs = { ...(kind.lowering.defaults ?? {}) };
    for (const [, found] of [...sources].reverse()) Object.assign(attrs, found);
    Object.assign(attrs, node.attrs);
    const from = Object.fromEntries(Object.keys(attrs).map((a) => [a, a in node.attrs ? 'the file' : (sources.find(([, f]) => a in f)?.[0] ?? `${node.kind}'s default`)]));
    const fromConfig = sources[0]?.[0].startsWith('config.json') ? sources[0][1] : {};
    const configKey = (a: string) => (a in fromConfig && !(a in node.attrs) ? sourceOf(a)?.key : undefined);
    nodes.set(node.name, { node, kind, attrs, from, configKey });
  }
  return { nodes, problems };
}
