// What the HTTP side knows of each served model, without any ONNX session: the manifest, the
// tokenizers (to count prompt positions, check the context and group requests into batches that
// need no padding) and the context length. Sessions live in the worker threads only.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import onnxProto from 'onnx-proto';
import { readManifest, type Manifest } from '../../src/artifact/manifest.js';
import { BlipError } from '../../src/diagnostics/BlipError.js';
import { buildInputs, promptStyle, type GenerateContext, type PromptStyle } from '../tasks/generate.js';
import { loadTokenizer, type HfTokenizer } from '../tokenizers/hf.js';

const { onnx } = onnxProto as unknown as { onnx: { ModelProto: { decode(b: Uint8Array): { graph?: { initializer?: Array<{ name?: string; dims?: Array<number | { toNumber(): number }> }> } } } } };

export interface ModelEntry {
  /** The name clients pass as `model`. */
  id: string;
  dir: string;
  manifest: Manifest;
  kind: 'generate' | 'retrieval';
  style?: PromptStyle;
  tokenizer: HfTokenizer;
  qformerTokenizer?: HfTokenizer;
  /** Positions the decoder can attend to (prompt + new tokens), when it has a limit. */
  contextLength?: number;
  /** Encoder-side text limit (BLIP VQA question, retrieval texts), when there is one. */
  encoderTextLength?: number;
  /** Manifest outputs by task. */
  tasks: { generate: boolean; itm: boolean; itc: boolean };
  /** Modification time of the manifest (for /v1/models `created`). */
  created: number;
}

/** `NAME=DIR` or `DIR` (the name is then the folder's name). */
export function parseModelArg(arg: string): { id: string; dir: string } {
  const eq = arg.indexOf('=');
  if (eq > 0 && !existsSync(arg)) {
    const id = arg.slice(0, eq);
    if (!/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/.test(id)) throw new BlipError('BLIP5901', `model name "${id}" may use letters, digits and . _ : / - only`);
    return { id, dir: resolve(arg.slice(eq + 1)) };
  }
  const dir = resolve(arg);
  return { id: basename(dir), dir };
}

function dimsOf(d: Array<number | { toNumber(): number }> | undefined): number[] {
  return (d ?? []).map((x) => (typeof x === 'number' ? x : x.toNumber()));
}

/** Position-embedding rows of a graph's learned position table (BERT / OPT style), if it has one. */
export function positionTable(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  let model;
  try {
    model = onnx.ModelProto.decode(readFileSync(file));
  } catch {
    return undefined;
  }
  for (const t of model.graph?.initializer ?? []) {
    const name = t.name ?? '';
    const dims = dimsOf(t.dims);
    if (dims.length !== 2) continue;
    // OPT's learned positions carry an offset of 2 rows
    if (/(^|\.)embed_positions\.weight$/.test(name)) return dims[0] - 2;
    if (/(^|\.)position_embeddings\.weight$/.test(name) && !/vision/.test(name)) return dims[0];
  }
  return undefined;
}

function tokenizerMaxLength(dir: string): number | undefined {
  try {
    const c = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as { model_max_length?: number };
    const v = c.model_max_length;
    return typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 1e7 ? v : undefined;
  } catch {
    return undefined;
  }
}

export function loadEntry(id: string, dir: string): ModelEntry {
  const manifest = readManifest(dir);
  if (!manifest.tokenizer) throw new BlipError('BLIP5020', `${dir}: the manifest names no tokenizer; recompile the model`);
  const tokDir = join(dir, manifest.tokenizer.dir);
  const tokenizer = loadTokenizer(tokDir);
  const qformerTokenizer = manifest.qformer_tokenizer ? loadTokenizer(join(dir, manifest.qformer_tokenizer.dir)) : undefined;
  const kind = manifest.graphs.decoder ? 'generate' : 'retrieval';
  const tasks = {
    generate: kind === 'generate',
    itm: !!manifest.graphs.retrieval && manifest.outputs.some((o) => o.task === 'itm'),
    itc: !!manifest.graphs.retrieval && manifest.outputs.some((o) => o.task === 'itc'),
  };
  const style = kind === 'generate' ? promptStyle(manifest) : undefined;
  let contextLength: number | undefined;
  let encoderTextLength: number | undefined;
  if (kind === 'generate') {
    contextLength = positionTable(join(dir, manifest.graphs.decoder!.file));
    if (contextLength === undefined && style?.kind !== 't5') contextLength = tokenizerMaxLength(tokDir);
    if (style?.kind === 'blip-vqa') encoderTextLength = positionTable(join(dir, manifest.graphs.encode!.file)) ?? tokenizerMaxLength(tokDir);
  } else {
    encoderTextLength = positionTable(join(dir, manifest.graphs.retrieval!.file)) ?? tokenizerMaxLength(tokDir);
  }
  let created = Math.floor(Date.now() / 1000);
  try {
    created = Math.floor(statSync(join(dir, 'manifest.json')).mtimeMs / 1000);
  } catch {
    /* keep now */
  }
  return { id, dir, manifest, kind, style, tokenizer, qformerTokenizer, contextLength, encoderTextLength, tasks, created };
}

export interface PromptFacts {
  /** Decoder positions taken before the first new token (visual prefix and prompt included). */
  positions: number;
  /** Encoder-side text tokens (VQA question, T5 prompt, InstructBLIP instruction), 0 when none. */
  encoderTokens: number;
  /** What requests must share to be batched without padding. */
  shape: string;
}

/** Count what a prompt takes, as the task layer will build it (one row, so no padding). */
export function promptFacts(e: ModelEntry, prompt: string | null): PromptFacts {
  const ctx = { manifest: e.manifest, tokenizer: e.tokenizer, qformerTokenizer: e.qformerTokenizer } as GenerateContext;
  const b = buildInputs(ctx, prompt === null ? null : [prompt], 1);
  let positions = b.prompt.inputIds[0]?.length ?? 0;
  if (b.prefillText) positions += b.prefillText.inputIds[0].length;
  if (b.prefix && !b.prefix.placeholders) positions += b.prefix.length;
  const enc = b.encodeFeeds.input_ids?.dims[1] ?? 0;
  const qf = b.encodeFeeds.qformer_input_ids?.dims[1] ?? 0;
  return { positions, encoderTokens: Number(enc), shape: `${prompt === null ? 'none' : 'text'}:${positions}:${enc}:${qf}` };
}
