// A compile failure: one or more problems, each with a BLIP4xxx code, a message, and (when a line
// of the .blip file is at fault) its location. Codes of the compiler (checkpoint-file codes
// BLIP4001-4006 are in src/weights/CheckpointError.ts):
//
//   BLIP4010  a tensor a node needs is missing from the checkpoint
//   BLIP4011  the checkpoint has a tensor no node reads
//   BLIP4012  a tensor's shape differs from what the node's attributes imply
//   BLIP4013  a pinned attribute disagrees with the checkpoint (config.json or tensor shapes)
//   BLIP4014  an attribute is neither pinned nor derivable from the checkpoint
//   BLIP4015  a graph shape or setting the compiler does not support
//   BLIP4016  the output path cannot be written (exists and is not a compiled model, ...)
//   BLIP4017  a checkpoint value the compiled model could not use (config.json / generation_config.json)
//   BLIP4019  the checkpoint is another model (a node's prefix holds nothing, another language model)
import type { SourceLoc } from '../ir/types.js';
import { BlipError, type BlipCode } from '../cli/Command.js';

export interface Problem {
  code: string;
  message: string;
  loc?: SourceLoc;
  /** BLIP4012: the tensor, its shape in the checkpoint and the shape the node's attributes imply. */
  shape?: { key: string; found: number[]; expected: number[] };
}

export class CompileError extends BlipError {
  override name = 'CompileError';
  readonly problems: Problem[];

  constructor(code: string, message: string, loc?: SourceLoc);
  constructor(problems: Problem[]);
  constructor(a: string | Problem[], message?: string, loc?: SourceLoc) {
    // the same problem found by two routes (a value checked for each place it is used) prints once
    const seen = new Set<string>();
    const problems = (typeof a === 'string' ? [{ code: a, message: message!, loc }] : a).filter((p) => {
      const key = `${p.code}\0${p.message}\0${p.loc?.file}:${p.loc?.start}`;
      return !seen.has(key) && seen.add(key);
    });
    super(problems[0].code as BlipCode, problems.length === 1 ? problems[0].message : `${problems[0].message} (and ${problems.length - 1} more problems)`);
    this.problems = problems;
  }
}

/** `file:line:col - error CODE: message`, one line per problem (the CLI's diagnostic header form). */
export function formatProblem(p: Problem): string {
  const where = p.loc ? `${p.loc.file}:${p.loc.line}:${p.loc.column} - ` : '';
  return `${where}error ${p.code}: ${p.message}`;
}
