// The shape of a `blip` subcommand. One per file in src/cli/commands/, listed in src/cli/main.ts.

export interface Command {
  name: string;
  /** One line for `blip --help`. */
  summary: string;
  /** Full help text for `blip NAME --help`, with examples. */
  help: string;
  /** Returns the process exit code: 0 ok, 1 failure (diagnostics, bad input), 2 usage error. */
  run(argv: string[]): Promise<number>;
}

/** A wrong invocation (unknown flag, missing argument): printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

// BlipError lives with the diagnostics; re-exported for the modules that import it from here.
export { BlipError, type BlipCode } from '../diagnostics/BlipError.js';
