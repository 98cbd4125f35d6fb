// The library entry point (`import { compile, load } from 'blip-graph'`): compile a .blip graph
// and a HuggingFace checkpoint into an artifact directory, and load such a directory to caption,
// answer, follow instructions or score image-text pairs. See docs/api.md.
import { readFileSync } from 'node:fs';
import { loadProgram } from './syntax/load.js';
import { compile as compileModel } from './lower/compile.js';
import { CompileError } from './lower/CompileError.js';
import { TARGETS, type Target as RewriteTarget } from './rewrite/index.js';
import { unknownOption } from './diagnostics/suggest.js';
import { shippedGraphOf } from './shippedGraph.js';
import { load as loadModel, type BlipModel, type LoadOptions } from '../runtime/model.js';
import { found } from '../runtime/tasks/arguments.js';
import type { Manifest } from './artifact/manifest.js';

/**
 * Load a compiled model directory (docs/api.md, "load"). Refuses a directory without a manifest
 * (BLIP5001), an invalid one (BLIP5002), one written by another artifact format version (BLIP5003)
 * or with missing files (BLIP5004); an unknown or unusable device is BLIP504x.
 */
export const load: (dir: string, opts?: LoadOptions | null) => Promise<BlipModel> = loadModel;
export type {
  BlipModel,
  LoadOptions,
  GenerateOptions,
  GenerateResult,
  GeneratedSequence,
  Timings,
  PromptStyle,
  TokenLogprobEntry,
  TokenLogprobInfo,
  ItmOptions,
  ItmResult,
  Embedding,
  ImageInput,
  DecodedImage,
} from '../runtime/model.js';
export type { Device, Provider } from '../runtime/providers.js';
export { readManifest, MANIFEST_VERSION, type Manifest } from './artifact/manifest.js';
export { BlipError, type BlipCode } from './diagnostics/BlipError.js';
export { CompileError, type Problem } from './lower/CompileError.js';
export { VERSION } from './version.js';

/**
 * The path of the shipped .blip file for the checkpoint in `weightsDir` (the one for the class its
 * config.json names, as `blip compile` without a graph takes it), or undefined when blip-graph
 * ships none for that class. Throws BlipError for an unreadable checkpoint.
 */
export function shippedGraph(weightsDir: string): string | undefined {
  if (typeof weightsDir !== 'string') throw new CompileError('BLIP4015', `shippedGraph() takes the checkpoint folder's path as a string, found ${Array.isArray(weightsDir) ? 'an array' : typeof weightsDir}`);
  return shippedGraphOf(weightsDir).path;
}
export { shippedGraphPath, graphsDir } from './shippedGraph.js';
export { startServer, type BlipServer, type ServeOptions } from '../runtime/server/index.js';

/** The onnxruntime provider a compile fuses operators for ('plain': standard ONNX only). */
export type Target = 'plain' | 'cpu' | 'cuda' | 'webgpu';
// the compiler's own list, the same names (a compile-time check; nothing of it is exported)
const sameTargets: [RewriteTarget, Target] extends [Target, RewriteTarget] ? true : never = true;
void sameTargets;

/** What compile() wrote (plain data: none of the compiler's internal types). */
export interface CompileResult {
  /** The artifact directory (where a symbolic link `out` points). */
  out: string;
  /** The manifest.json written there. */
  manifest: Manifest;
  /** Parameters of the weights written. */
  parameters: number;
  /** Each ONNX graph written: its name (encode, decoder, retrieval), file, node count and file size. */
  graphs: Array<{ name: string; file: string; nodes: number; bytes: number }>;
  /** Bytes of weights.bin. */
  weightsBytes: number;
  seconds: number;
  /**
   * One line each: the .blip file's check warnings (`file:line:column BLIPnnnn: message`), then the
   * compile's (stale leftovers removed, float16 overflow, missing tokenizer files, ...).
   */
  warnings: string[];
  /** Per graph, how often each fusion of `target` / `quantize` fired, by fusion name (empty objects for target plain without quantize). */
  rewrites: Record<string, Record<string, number>>;
}

export interface CompileOptions {
  /** The HuggingFace checkpoint directory (config.json + safetensors + tokenizer files). */
  weights: string;
  /** The artifact directory to write (replaced only if it already holds a compiled model). */
  out: string;
  /** Precision of the weights and arithmetic (graph inputs and outputs stay float32). Default float32. */
  dtype?: 'float32' | 'float16' | 'fp32' | 'fp16' | undefined;
  /** The model to compile when the file declares several. */
  model?: string | undefined;
  /** Fused operators for one onnxruntime provider: 'cpu', 'cuda', 'webgpu'; 'plain' (default) is standard ONNX. */
  target?: Target | undefined;
  /** Weight-only block quantization of the linear layers (com.microsoft.MatMulNBits). */
  quantize?: 'int8' | 'int4' | undefined;
  /** Bytes of weights written so far, in all, and the tensor just written. */
  onProgress?: ((done: number, total: number, key: string) => void) | undefined;
  /** Stops the compile between tensors: its partial output is removed and `out` is left as it was. */
  signal?: AbortSignal | undefined;
}

const COMPILE_OPTIONS: Array<keyof CompileOptions> = ['weights', 'out', 'dtype', 'model', 'target', 'quantize', 'onProgress', 'signal'];

/**
 * Compile `graphPath` (a .blip file) with a checkpoint into `opts.out`, as `blip compile` does.
 * Throws CompileError (its `problems` carry BLIPnnnn codes and .blip locations) when the file does
 * not check or the checkpoint does not fit it, BlipError for unreadable checkpoint files.
 */
export async function compile(graphPath: string, opts: CompileOptions): Promise<CompileResult> {
  // checked at run time too, for JavaScript callers
  if (typeof graphPath !== 'string' || graphPath === '') {
    const hint = graphPath === undefined ? ' (shippedGraph() gives undefined for a checkpoint whose class blip-graph ships no graph for: name or write one)' : '';
    throw new CompileError('BLIP4015', `compile() takes the .blip file's path as a string, found ${graphPath === '' ? 'an empty string' : typeof graphPath}${hint}`);
  }
  if (typeof opts !== 'object' || opts === null) throw new CompileError('BLIP4015', 'compile() needs options with weights and out');
  const unknown = unknownOption(opts, COMPILE_OPTIONS, 'compile option');
  if (unknown) throw new CompileError('BLIP4015', unknown);
  const bad = (name: string, want: string) => new CompileError('BLIP4015', `compile option ${name} must be ${want}, found ${found((opts as unknown as Record<string, unknown>)[name])}`);
  if (opts.weights === undefined) throw new CompileError('BLIP4015', 'compile() needs the weights option, the checkpoint directory');
  if (opts.out === undefined) throw new CompileError('BLIP4015', "compile() needs the out option, the compiled model's directory");
  if (typeof opts.weights !== 'string' || opts.weights === '') throw bad('weights', 'the checkpoint directory (a non-empty path)');
  if (typeof opts.out !== 'string' || opts.out === '') throw bad('out', "the compiled model's directory (a non-empty path)");
  if (opts.dtype !== undefined && !['float32', 'float16', 'fp32', 'fp16'].includes(opts.dtype)) throw new CompileError('BLIP4015', `unknown dtype ${typeof opts.dtype === 'string' ? `'${opts.dtype}'` : found(opts.dtype)} (expected fp32 or fp16)`);
  if (opts.model !== undefined && (typeof opts.model !== 'string' || opts.model === '')) throw bad('model', 'the name of a model the .blip file declares');
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw bad('onProgress', 'a function (done, total, key)');
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) throw bad('signal', 'an AbortSignal (AbortController.signal)');
  const target = opts.target ?? 'plain';
  if (!TARGETS.includes(target)) throw new CompileError('BLIP4015', `unknown target ${typeof target === 'string' ? `'${target}'` : found(target)} (expected ${TARGETS.join(', ')})`);
  if (opts.quantize !== undefined && opts.quantize !== 'int8' && opts.quantize !== 'int4') throw new CompileError('BLIP4015', `unknown quantize ${typeof opts.quantize === 'string' ? `'${opts.quantize}'` : found(opts.quantize)} (expected int8 or int4)`);
  const loaded = loadProgram(graphPath);
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length || !loaded.program) {
    throw new CompileError(errors.length ? errors.map((d) => ({ code: d.code, message: d.message, loc: d.loc })) : [{ code: 'BLIP4015', message: `${graphPath} declares no model` }]);
  }
  const models = loaded.program.models;
  const model = opts.model ? models.find((m) => m.name === opts.model) : models.length === 1 ? models[0] : undefined;
  if (!model) {
    const names = models.map((m) => m.name).join(', ');
    throw new CompileError('BLIP4015', opts.model ? `${graphPath} has no model '${opts.model}' (it has ${names})` : `${graphPath} declares ${models.length} models (${names}); choose one with the model option`);
  }
  const dtype = opts.dtype === 'fp16' || opts.dtype === 'float16' ? 'float16' : 'float32';
  const result = await compileModel({ model, graphFile: graphPath, graphText: readFileSync(graphPath, 'utf8'), weights: opts.weights, out: opts.out, dtype, target, quantize: opts.quantize, onProgress: opts.onProgress, signal: opts.signal });
  // the check's warnings first (an unused node, a length bounded twice), as blip compile prints them
  const checked = loaded.diagnostics.filter((d) => d.severity === 'warning').map((d) => `${d.loc.file}:${d.loc.line}:${d.loc.column} ${d.code}: ${d.message}`);
  return { ...result, warnings: [...checked, ...result.warnings] };
}
