// Whether the checkpoint is the model the graph describes, asked before any size is resolved. A
// BLIP-2 graph given a BLIP checkpoint otherwise stops at the first size the checkpoint cannot give
// ("pin it") or lists every tensor it does not read, and never names the real cause: the wrong
// graph, or the wrong folder. One BLIP4019 line says what the checkpoint is and which shipped graph
// compiles it.
import type { IrModel } from '../ir/types.js';
import { nodeKinds, portWith } from '../nodes/index.js';
import type { JsonObject } from '../weights/checkpoint.js';
import { effectiveConfig, isJsonObject } from '../weights/transformersConfig.js';
import type { Problem } from './CompileError.js';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT, packagePath } from '../packageRoot.js';

/** The shipped graph for each transformers class (and language model), as README's table lists them. */
const SHIPPED_GRAPHS: Array<{ architecture: string; language?: string; graph: string }> = [
  { architecture: 'BlipForConditionalGeneration', graph: 'graphs/blip-caption.blip' },
  { architecture: 'BlipForQuestionAnswering', graph: 'graphs/blip-vqa.blip' },
  { architecture: 'BlipForImageTextRetrieval', graph: 'graphs/blip-itm.blip' },
  { architecture: 'Blip2ForConditionalGeneration', language: 'opt', graph: 'graphs/blip2-opt.blip' },
  { architecture: 'Blip2ForConditionalGeneration', language: 't5', graph: 'graphs/blip2-t5.blip' },
  { architecture: 'Blip2ForConditionalGeneration', language: 'llama', graph: 'graphs/examples/blip2-llama.blip' },
  { architecture: 'Blip2ForImageTextRetrieval', graph: 'graphs/blip2-itm.blip' },
  { architecture: 'InstructBlipForConditionalGeneration', language: 't5', graph: 'graphs/instructblip-t5.blip' },
  { architecture: 'InstructBlipForConditionalGeneration', language: 'llama', graph: 'graphs/instructblip-vicuna.blip' },
];

/** config.json's `architectures` as class names: a lone string is the one class it names; undefined when absent, [] when it names none. */
function architecturesOf(config: JsonObject): string[] | undefined {
  const given = config.architectures;
  if (given === undefined || given === null) return undefined;
  return typeof given === 'string' ? [given] : Array.isArray(given) && given.every((a) => typeof a === 'string') ? (given as string[]) : [];
}

/**
 * What config.json says the checkpoint is (its `architectures` entry, with the language model of a
 * generating BLIP-2 / InstructBLIP) and the shipped graph for it (a path from the package root),
 * when blip-graph ships one; `invalid` (what config.json does wrong, as a predicate) when
 * `architectures` names no class or a generating model's `text_config` no language model.
 */
export function shippedGraphFor(config: JsonObject): { what?: string; graph?: string; invalid?: string } {
  const architectures = architecturesOf(config);
  if (!architectures) return {};
  const arch = architectures[0];
  if (!arch) return { invalid: `has "architectures": ${JSON.stringify(config.architectures)}, which is not a list of transformers class names` };
  const text = effectiveConfig(config).config.text_config;
  const language = isJsonObject(text) ? text.model_type : undefined;
  const generates = arch === 'Blip2ForConditionalGeneration' || arch === 'InstructBlipForConditionalGeneration';
  if (generates && typeof language !== 'string') return { what: arch, invalid: `says ${arch}, but its "text_config" (${JSON.stringify(config.text_config)}) names no language model` };
  const what = `${arch}${generates && typeof language === 'string' ? ` with ${language}` : ''}${architectures.length > 1 ? ` (the first of its ${architectures.length} architectures)` : ''}`;
  return { what, graph: SHIPPED_GRAPHS.find((s) => s.architecture === arch && (!s.language || s.language === language))?.graph };
}

/**
 * What the checkpoint holds, what config.json says it is, and the shipped graph for it when there
 * is one and it is not `graphFile`, the graph that did not fit (as a path from the current folder).
 */
export function describeCheckpoint(config: JsonObject, keys: string[], graphFile?: string): string {
  const prefixes = [...new Set(keys.map((k) => k.split('.')[0]))].sort();
  const holds = prefixes.length ? `it holds ${prefixes.map((p) => (keys.includes(p) ? p : `${p}.*`)).join(', ')}` : 'it holds no tensors at all';
  const shipped = shippedGraphFor(config);
  if (!shipped.what) return holds;
  const other = shipped.graph && (!graphFile || resolve(graphFile) !== join(PACKAGE_ROOT, shipped.graph));
  return `${holds} (config.json: ${shipped.what}${other ? `, which ${packagePath(shipped.graph!)} compiles` : ''})`;
}

/**
 * One BLIP4019 problem naming every sign that the checkpoint is another model, or none: nodes an
 * output needs whose prefix holds no tensor, language-model nodes over a section of another
 * model_type, a Q-Former with an instruction over BLIP-2 (or without over InstructBLIP), and a
 * config.json whose model_type is not the family of its architectures. (Parts of the checkpoint no
 * node reads are known only after lowering: compile.ts says those.)
 */
export function pairingProblems(model: IrModel, used: Set<string>, config: JsonObject, keys: string[], graphFile?: string): Problem[] {
  const prefixes = new Set<string>();
  for (const k of keys) {
    const parts = k.split('.');
    for (let i = 1; i < parts.length; i++) prefixes.add(parts.slice(0, i).join('.'));
  }
  const { config: effective, filled } = effectiveConfig(config);
  const missing = new Map<string, string[]>(); // prefix -> the nodes reading it
  const others: string[] = [];
  let loc;
  for (const node of model.nodes) {
    if (!used.has(node.name)) continue;
    const kind = nodeKinds[node.kind];
    if (node.checkpoint && !prefixes.has(node.checkpoint)) {
      missing.set(node.checkpoint, [...(missing.get(node.checkpoint) ?? []), node.name]);
      loc ??= node.loc;
      continue;
    }
    // InstructBLIP's Q-Former reads the instruction (its own embeddings); BLIP-2's has none (its
    // text: is retrieval's). The kinds with a port whose role is 'instruction' are the Q-Former's
    // (PortSpec.role), whatever they name it.
    const instruction = portWith(kind, 'instruction');
    const retrievalText = portWith(kind, 'retrieval-text');
    if (instruction !== undefined && (config.model_type === 'instructblip') !== node.edges.some((e) => e.port === instruction) && !node.edges.some((e) => e.port === retrievalText)) {
      others.push(
        config.model_type === 'instructblip'
          ? `node "${node.name}" takes no instruction, but config.json's model_type is "instructblip", whose Q-Former reads one`
          : `node "${node.name}" takes an instruction (InstructBLIP), but config.json's model_type is ${JSON.stringify(config.model_type)}`,
      );
      loc ??= node.loc;
    }
    const sectionName = node.config ?? kind?.defaultConfig;
    const section = sectionName === undefined ? undefined : sectionName === '' ? effective : effective[sectionName];
    const type = isJsonObject(section) ? section.model_type : undefined;
    // A config: naming another section than the kind's usual one, which the checkpoint has, is the
    // likelier cause there: the compile says so (BLIP4014, write config: "vision_config").
    const usual = kind?.defaultConfig;
    const elsewhere = node.config !== undefined && usual !== undefined && node.config !== usual && isJsonObject(config[usual]);
    if (kind?.modelTypes && typeof type === 'string' && !kind.modelTypes.includes(type) && !elsewhere) {
      const said = filled.get(sectionName!)?.keys.has('model_type') ? `leaves model_type out, which transformers reads as "${type}"` : `is model_type "${type}"`;
      // the registered kinds that do lower it, by their modelTypes: what to write instead
      const lowering = Object.values(nodeKinds).filter((k) => k.modelTypes?.includes(type)).map((k) => k.kind);
      const instead = lowering.length ? `; "${type}" is the ${lowering.join(' or ')} kind's` : '';
      others.push(`node "${node.name}" is ${node.kind}, but config.json "${sectionName}" ${said} (the ${node.kind} kind lowers model_type ${kind.modelTypes.map((t) => `"${t}"`).join(', ')} only${instead})`);
      loc ??= node.loc;
    }
  }
  // model_type decides how transformers reads config.json, architectures which class it builds
  const arch = architecturesOf(config)?.[0];
  const archFamily = arch === undefined ? undefined : arch.startsWith('InstructBlip') ? 'instructblip' : arch.startsWith('Blip2') ? 'blip-2' : arch.startsWith('Blip') ? 'blip' : undefined;
  const family = config.model_type === 'blip_2' ? 'blip-2' : config.model_type;
  if (archFamily && family !== archFamily) {
    others.push(`config.json's model_type ${JSON.stringify(config.model_type)} is not the family of its architectures (${arch}, model_type "${archFamily}")`);
    loc ??= model.loc;
  }
  const found = [
    ...(missing.size ? [`it has no tensors under ${[...missing].map(([p, names]) => `"${p}." (${names.map((n) => `node ${n}`).join(', ')})`).join(', ')}`] : []),
    ...others,
  ];
  if (!found.length) return [];
  return [{ code: 'BLIP4019', message: `the checkpoint is another model than "${model.name}" describes: ${found.join('; ')}; ${describeCheckpoint(config, keys, graphFile)}`, loc }];
}

/**
 * The part of the checkpoint a tensor no node owns belongs to: the shortest prefix of its key that
 * no node's prefix lies within (`text_decoder.cls` beside a node at `text_decoder.bert`).
 */
export function unownedPart(key: string, nodePrefixes: string[]): string {
  const parts = key.split('.');
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join('.');
    if (!nodePrefixes.some((n) => n === p || n.startsWith(`${p}.`))) return p;
  }
  return key;
}
