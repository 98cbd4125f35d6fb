// The library entry point (`import { compile, load } from 'blip-graph'`): compile a .blip graph
// and a HuggingFace checkpoint into an artifact directory, and load such a directory to caption,
// answer, follow instructions or score image-text pairs. See docs/api.md.
import { readFileSync } from 'node:fs';
import { loadProgram } from './syntax/load.js';
import { compile as compileModel, type CompileResult } from './lower/compile.js';
import { CompileError } from './lower/CompileError.js';
import { TARGETS, type Target } from './rewrite/index.js';
import { unknownOption } from './diagnostics/suggest.js';
import { shippedGraphOf } from './shippedGraph.js';

export { load } from '../runtime/model.js';
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
export { readManifest, MANIFEST_VERSION, type Manifest } from './artifact/manifest.js';
export { BlipError } from './cli/Command.js';
export { CompileError, type Problem } from './lower/CompileError.js';
export type { CompileResult } from './lower/compile.js';
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
export { startServer, type BlipServer, type ServeOptions } from '../runtime/server/index.js';

export interface CompileOptions {
  /** The HuggingFace checkpoint directory (config.json + safetensors + tokenizer files). */
  weights: string;
  /** The artifact directory to write (replaced only if it already holds a compiled model). */
  out: string;
  /** Precision of the weights and arithmetic (graph inputs and outputs stay float32). Default float32. */
  dtype?: 'float32' | 'float16' | 'fp32' | 'fp16';
  /** The model to compile when the file declares several. */
  model?: string;
  /** Fused operators for one onnxruntime provider: 'cpu', 'cuda', 'webgpu'; 'plain' (default) is standard ONNX. */
  target?: Target;
  /** Weight-only block quantization of the linear layers (com.microsoft.MatMulNBits). */
  quantize?: 'int8' | 'int4';
  /** Bytes of weights written so far, in all, and the tensor just written. */
  onProgress?: (done: number, total: number, key: string) => void;
  /** Stops the compile between tensors: its partial output is removed and `out` is left as it was. */
  signal?: AbortSignal;
}

const COMPILE_OPTIONS: Array<keyof CompileOptions> = ['weights', 'out', 'dtype', 'model', 'target', 'quantize', 'onProgress', 'signal'];

/**
 * Compile `graphPath` (a .blip file) with a checkpoint into `opts.out`, as `blip compile` does.
 * Throws CompileError (its `problems` carry BLIPnnnn codes and .blip locations) when the file does
 * not check or the checkpoint does not fit it, BlipError for unreadable checkpoint files.
 */
export async function compile(graphPath: string, opts: CompileOptions): Promise<CompileResult> {
  // checked at run time too, for JavaScript callers
  if (typeof graphPath !== 'string') {
    const hint = graphPath === undefined ? ' (shippedGraph() gives undefined for a checkpoint whose class blip-graph ships no graph for: name or write one)' : '';
    throw new CompileError('BLIP4015', `compile() takes the .blip file's path as a string, found ${typeof graphPath}${hint}`);
  }
  if (typeof opts !== 'object' || opts === null) throw new CompileError('BLIP4015', 'compile() needs options with weights and out');
  const unknown = unknownOption(opts, COMPILE_OPTIONS, 'compile option');
  if (unknown) throw new CompileError('BLIP4015', unknown);
  for (const k of ['weights', 'out'] as const) if (typeof opts[k] !== 'string') throw new CompileError('BLIP4015', `compile() needs the ${k} option, a directory path`);
  if (opts.dtype !== undefined && !['float32', 'float16', 'fp32', 'fp16'].includes(opts.dtype)) throw new CompileError('BLIP4015', `unknown dtype '${opts.dtype}' (expected fp32 or fp16)`);
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
  const target = opts.target ?? 'plain';
  if (!TARGETS.includes(target)) throw new CompileError('BLIP4015', `unknown target '${target}' (expected ${TARGETS.join(', ')})`);
  if (opts.quantize !== undefined && opts.quantize !== 'int8' && opts.quantize !== 'int4') throw new CompileError('BLIP4015', `unknown quantize '${opts.quantize}' (expected int8 or int4)`);
  return compileModel({ model, graphFile: graphPath, graphText: readFileSync(graphPath, 'utf8'), weights: opts.weights, out: opts.out, dtype, target, quantize: opts.quantize, onProgress: opts.onProgress, signal: opts.signal });
}
