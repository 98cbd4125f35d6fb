// The error every user-facing failure is thrown as, from the compiler, the runtime and the CLI
// alike (docs/api.md): here, with the diagnostics, so the runtime need not import the CLI for it.

/** A diagnostic code: BLIP and four digits (docs/diagnostics.md). */
export type BlipCode = `BLIP${number}`;

/**
 * A user-facing failure (bad file, bad checkpoint, unreadable image): printed as one line, exit
 * code 1, never with a stack trace. `code` is a BLIPnnnn diagnostic code.
 */
export class BlipError extends Error {
  override name = 'BlipError';
  constructor(
    readonly code: BlipCode,
    message: string,
  ) {
    super(message);
  }
}
