// User-facing runtime failures (BLIP5xxx). Each is one line that says what was expected and what
// was found, naming the file or setting at fault; the CLI prints it without a stack trace (it
// catches BlipError and anything carrying a BLIPnnnn `code`).
//
// Codes used by runtime/ (5001-5004 belong to src/artifact/manifest.ts):
//   BLIP5010 an image cannot be read or decoded
//   BLIP5011 an image cannot be processed as configured (mode, size)
//   BLIP5012 bad preprocessing configuration (manifest `preprocess` or HF processor config)
//   BLIP5020 a tokenizer cannot be loaded (missing, unreadable or invalid files)
//   BLIP5021 a SentencePiece model (tokenizer.model) cannot be parsed or converted
//   BLIP5030 bad generation settings
//   BLIP5031 a model step returned something the generation loop cannot use
//   BLIP5032 a prompt or text longer than the model's learned positions allow
//   BLIP5033 a text with a token the encoder reading it has no embedding for
//   BLIP5040 unknown --device name
//   BLIP5041 execution provider not installed
//   BLIP5042 execution provider installed but unusable here (no adapter / driver)
//   BLIP5043 an ONNX session cannot be created or run
//   BLIP5044 decoder.onnx inputs/outputs do not follow the artifact contract
import { BlipError } from '../src/diagnostics/BlipError.js';

export const RUNTIME_CODES = {
  BLIP5010: 'cannot read image',
  BLIP5011: 'cannot process image',
  BLIP5012: 'bad preprocessing configuration',
  BLIP5020: 'cannot load tokenizer',
  BLIP5021: 'cannot convert SentencePiece model',
  BLIP5030: 'bad generation settings',
  BLIP5031: 'bad model step output',
  BLIP5032: 'text longer than the model can take',
  BLIP5033: 'text has a token the model has no embedding for',
  BLIP5040: 'unknown device',
  BLIP5041: 'execution provider not installed',
  BLIP5042: 'execution provider unusable',
  BLIP5043: 'ONNX session failure',
  BLIP5044: 'decoder contract mismatch',
} as const;

export type RuntimeCode = keyof typeof RUNTIME_CODES;

/** A runtime failure with a BLIP5xxx code; `file` names the input at fault when there is one. */
export class BlipRuntimeError extends BlipError {
  override name = 'BlipRuntimeError';
  constructor(
    code: RuntimeCode,
    message: string,
    readonly file?: string,
  ) {
    super(code, message);
  }
}

export class ImageDecodeError extends BlipRuntimeError {
  override name = 'ImageDecodeError';
  constructor(file: string, reason: string) {
    super('BLIP5010', `cannot read image ${file}: ${reason}`, file);
  }
}

export class PreprocessConfigError extends BlipRuntimeError {
  override name = 'PreprocessConfigError';
  constructor(message: string, file?: string) {
    super('BLIP5012', message, file);
  }
}

export class TokenizerLoadError extends BlipRuntimeError {
  override name = 'TokenizerLoadError';
  constructor(message: string, file?: string, code: 'BLIP5020' | 'BLIP5021' = 'BLIP5020') {
    super(code, message, file);
  }
}

export class GenerationConfigError extends BlipRuntimeError {
  override name = 'GenerationConfigError';
  constructor(message: string) {
    super('BLIP5030', message);
  }
}

export class DeviceError extends BlipRuntimeError {
  override name = 'DeviceError';
  constructor(code: 'BLIP5040' | 'BLIP5041' | 'BLIP5042' | 'BLIP5043', message: string) {
    super(code, message);
  }
}

/** An error's whole message on one line (onnxruntime puts what it expected on the lines after the first). */
export function oneLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

/** First line of an error's message (native libraries sometimes return several). */
export function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (m.split('\n').find((l) => l.trim().length > 0) ?? m).trim();
}
