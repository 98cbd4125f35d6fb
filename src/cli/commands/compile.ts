import { isCheckpointFolder, shippedGraphArg } from '../shippedGraphArg.js';
import type { Command } from '../Command.js';
import { UsageError } from '../Command.js';
import { valueOptions } from '../options.js';
import { loadProgram } from '../../syntax/load.js';
import { formatDiagnostics } from '../../diagnostics/format.js';
import { hasErrors, type Diagnostic } from '../../diagnostics/Diagnostic.js';
import { compile, type CompileResult } from '../../lower/compile.js';
import { CompileError, formatProblem } from '../../lower/CompileError.js';
import { TARGETS, type Target } from '../../rewrite/index.js';
import { removeOwnPartialOutputs } from '../../lower/partialOutput.js';
import { byteSize, modelHeading } from '../../artifact/manifest.js';

/** The reason a compile was aborted: the signal that stopped it. */
class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/** The shell's convention: 128 + the signal's number. */
const EXIT_CODE: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

const command: Command = {
  name: 'compile',
  summary: 'compile a .blip model and a HuggingFace checkpoint to ONNX',
  help: `Usage: blip compile [GRAPH.blip] --weights DIR --out OUTDIR [--dtype fp32|fp16] [--target T] [--quantize Q] [--model NAME]

Checks GRAPH.blip, reads the checkpoint in DIR (config.json and model.safetensors, or sharded
model-0000k-of-0000n.safetensors with model.safetensors.index.json; float32, float16 or
bfloat16 tensors), and writes a compiled model directory OUTDIR:

  manifest.json   what 'blip run' reads (task, inputs/outputs, preprocessing, generation defaults)
  encode.onnx     once-per-input part (image encoder, question encoder, cross-attention K/V)
  decoder.onnx    one decoder step with a KV cache (generating models)
  retrieval.onnx  ITM / ITC scores (retrieval models)
  weights.bin     the weights, each tensor stored once, shared by the graphs
  tokenizer/      the checkpoint's tokenizer files

Weights stream one tensor at a time, so memory stays near the largest tensor. Attributes the
file leaves out come from config.json, read as transformers reads it (a key it leaves out is its
config class's default); a checkpoint of another model than the file describes, a pinned attribute
that disagrees with the checkpoint, a missing, unexpected or misshapen tensor is an error naming
the tensor, the node and its line.
Nothing is left behind on failure or on Ctrl-C / SIGTERM / SIGHUP (exit 130 / 143 / 129, OUTDIR as
it was); what a killed compile left (OUTDIR.tmp-<pid>-<call>) is removed by the next compile to OUTDIR.
An existing OUTDIR is replaced only if it holds a compiled model. A summary goes to stdout; the check's
and the compile's warnings, and a progress bar when it is a terminal, to stderr.

Without GRAPH.blip, the shipped graph for the checkpoint is compiled: the one for the transformers
class config.json names in "architectures" (and, for BLIP-2 / InstructBLIP, its text_config's
model_type), as README's table lists them; which one is said on stderr.

Options:
  --weights DIR   the HuggingFace checkpoint directory (required)
  --out OUTDIR    where to write the compiled model (required)
  --dtype T       fp32 (default) or fp16: precision of the weights and arithmetic
                  (graph inputs and outputs stay float32); fp16 is for GPUs: the CPU
                  provider computes it in float32 with more memory than fp32
  --target T      plain (default), cpu, cuda or webgpu: plain writes standard ONNX any runtime
                  loads (but for --quantize's operator, below); a target replaces attention, residual + layer norm, GELU, RMSNorm and
                  rotary positions by onnxruntime's fused operators that have kernels there
                  (LLaMA attention: GroupQueryAttention on cpu; webgpu keeps attention
                  decomposed, see docs/webgpu.md; residual + layer norm stays unfused on
                  cpu, whose fused kernel is the slower)
  --quantize Q    int8 or int4: weight-only block quantization of the linear layers
                  (com.microsoft.MatMulNBits, onnxruntime only, on every target; accuracy_level 4,
                  int8 activations on the CPU, for plain and cpu builds; unset for cuda/webgpu)
  --model NAME    the model to compile when GRAPH.blip declares several

Examples:
  blip compile --weights ./blip2-opt-2.7b --out ./out/blip2
  blip compile graphs/blip-caption.blip --weights ./blip-image-captioning-base --out ./out/caption
  blip compile graphs/blip-vqa.blip --weights ./blip-vqa-base --out ./out/vqa --dtype fp16`,
  async run(argv) {
    const { values: opt, positionals: files } = valueOptions(argv, ['weights', 'out', 'dtype', 'model', 'target', 'quantize']);
    if (files.length > 1) throw new UsageError(`expected one GRAPH.blip, found ${files.length}`);
    if (!opt.weights && files.length === 1 && isCheckpointFolder(files[0])) {
      throw new UsageError(`${files[0]} is a checkpoint folder: give it as --weights ${files[0]} (the graph is then the shipped one for its config.json, or name one before it)`);
    }
    if (!opt.weights) throw new UsageError('--weights DIR is required');
    if (!opt.out) throw new UsageError('--out OUTDIR is required');
    const out = opt.out;
    const dtype = opt.dtype === undefined || opt.dtype === 'fp32' ? 'float32' : opt.dtype === 'fp16' ? 'float16' : undefined;
    if (!dtype) throw new UsageError(`--dtype expects fp32 or fp16, found '${opt.dtype}'`);
    const target = (opt.target ?? 'plain') as Target;
    if (!TARGETS.includes(target)) throw new UsageError(`--target expects ${TARGETS.join(', ')}, found '${opt.target}'`);
    const quantize = opt.quantize as 'int8' | 'int4' | undefined;
    if (quantize !== undefined && quantize !== 'int8' && quantize !== 'int4') throw new UsageError(`--quantize expects int8 or int4, found '${opt.quantize}'`);

    const file = files[0] ?? shippedGraphArg('compile', opt.weights);
    const loaded = loadProgram(file);
    // the check's warnings too (an unused node, BLIP2030), as 'blip check' prints them
    process.stderr.write(formatDiagnostics(loaded.diagnostics, loaded.sources));
    if (hasErrors(loaded.diagnostics) || !loaded.program) return 1;
    const models = loaded.program.models;
    const model = opt.model ? models.find((m) => m.name === opt.model) : models.length === 1 ? models[0] : undefined;
    if (!model) {
      const names = models.map((m) => m.name).join(', ');
      throw new UsageError(opt.model ? `${file} has no model '${opt.model}' (it has ${names})` : `${file} declares ${models.length} models (${names}); choose one with --model`);
    }

    const bar = process.stderr.isTTY ? progressBar() : undefined;
    // A signal stops the compile between two tensors, which removes its partial output; a second
    // one does not wait for that.
    const abort = new AbortController();
    const onSignal = (sig: NodeJS.Signals): void => {
      if (!abort.signal.aborted) return abort.abort(new Interrupted(sig));
      removeOwnPartialOutputs(out);
      process.exit(EXIT_CODE[sig]);
    };
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
    let result: CompileResult;
    try {
      // the text that was checked is the one hashed: reading the file again would hash another
      // text if it changed since, or nothing for a pipe (<(…)) read once
      result = await compile({ model, graphFile: file, graphText: loaded.sources.get(file)!, weights: opt.weights, out: opt.out, dtype, target, quantize, onProgress: bar?.update, signal: abort.signal });
    } catch (e) {
      bar?.clear();
      if (e instanceof Interrupted) {
        process.stderr.write(`blip compile: stopped by ${e.signal}; nothing written, ${opt.out} is as it was\n`);
        return EXIT_CODE[e.signal];
      }
      if (e instanceof CompileError) {
        const located: Diagnostic[] = e.problems.filter((p) => p.loc).map((p) => ({ code: p.code, severity: 'error', message: p.message, loc: p.loc! }));
        for (const p of e.problems.filter((p) => !p.loc)) process.stderr.write(formatProblem(p) + '\n');
        process.stderr.write(formatDiagnostics(located, loaded.sources));
        return 1;
      }
      throw e; // checkpoint-file errors (BLIP400x) print as one line; anything else is a bug
    } finally {
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
    }
    bar?.clear();
    process.stdout.write(summary(result));
    for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
    return 0;
  },
};
export default command;

function summary(r: CompileResult): string {
  const m = r.manifest;
  const rows: Array<[string, string]> = [['parameters', `${(r.parameters / 1e6).toFixed(2)} M (shared tensors counted once)`]];
  for (const g of r.graphs) {
    const fused = Object.entries(r.rewrites[g.name] ?? {}).map(([k, n]) => `${n} ${k}`);
    rows.push([g.file, `${g.nodes} nodes, ${byteSize(g.bytes)}${fused.length ? ` (fused: ${fused.join(', ')})` : ''}`]);
  }
  rows.push([m.weights.file, `${byteSize(r.weightsBytes)}, ${m.weights.tensors} tensors`]);
  rows.push(['time', `${r.seconds.toFixed(1)} s`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return [
    `compiled ${modelHeading(m)} -> ${r.out}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`),
    '',
  ].join('\n');
}

/** A one-line progress bar on stderr, redrawn at most every 100 ms. */
function progressBar() {
  let last = 0;
  const width = 30;
  return {
    update(done: number, total: number, key: string) {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const f = total ? done / total : 1;
      const filled = Math.round(f * width);
      const name = key.length > 40 ? '…' + key.slice(-39) : key;
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(f * 100).toFixed(0).padStart(3)}% ${byteSize(done)} / ${byteSize(total)}  ${name}\x1b[K`);
    },
    clear() {
      process.stderr.write('\r\x1b[K');
    },
  };
}
