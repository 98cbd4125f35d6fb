// Errors of `blip serve`, in OpenAI's error shape:
//   { "error": { "message": "...", "type": "invalid_request_error", "param": "messages", "code": "..." } }
// Every failure a client can cause is an ApiError with a 4xx status; anything else is a 500
// `server_error` whose message is one line (never a stack trace).
import { BlipError } from '../../src/diagnostics/BlipError.js';
import { firstLine } from '../errors.js';
import { withOptionNames } from '../tasks/arguments.js';

export type ErrorType = 'invalid_request_error' | 'authentication_error' | 'permission_error' | 'not_found_error' | 'rate_limit_error' | 'timeout_error' | 'server_error' | 'service_unavailable';

/** The JSON an error travels as (HTTP body, SSE event, worker message). */
export interface WireError {
  status: number;
  message: string;
  type: ErrorType;
  code: string | null;
  param: string | null;
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers (Retry-After, Allow, ...). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toWire(): WireError {
    return { status: this.status, message: this.message, type: this.type, code: this.code, param: this.param };
  }

  static fromWire(w: WireError): ApiError {
    return new ApiError(w.status, w.message, w.type, w.code, w.param);
  }
}

/** 400 invalid_request_error about one parameter. */
export function badRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, 'invalid_request_error', code, param);
}

/** The error body OpenAI clients parse. */
export function errorBody(e: ApiError | WireError): { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

/** The library's generate() options as this server's request fields, for messages that reach a client from the library. */
const SERVER_OPTION_NAMES: Record<string, string> = { maxNewTokens: 'max_tokens', topP: 'top_p', topLogprobs: 'top_logprobs', numReturnSequences: 'n' };

/**
 * Map anything thrown by the runtime to an ApiError: images that do not decode or cannot be
 * processed and bad generation settings are the client's (400); the rest is the server's (500).
 * `imageParam`: the request field of the image a failure is about (the worker, which decodes the
 * images, knows it); an image error names it as its param and at the start of its message.
 */
export function toApiError(e: unknown, imageParam?: string): ApiError {
  if (e instanceof ApiError) return e;
  const code = e instanceof BlipError ? e.code : typeof (e as { code?: unknown })?.code === 'string' ? ((e as { code: string }).code as string) : undefined;
  const msg = firstLine(withOptionNames(e, SERVER_OPTION_NAMES));
  switch (code) {
    case 'BLIP5010':
    case 'BLIP5011':
      return new ApiError(400, imageParam ? `${imageParam}: ${msg}` : msg, 'invalid_request_error', 'invalid_image', imageParam ?? null);
    case 'BLIP5030':
      return new ApiError(400, msg, 'invalid_request_error', 'invalid_generation_settings', null);
    case 'BLIP5032':
      // a text the model has no positions for (an instruction past the Q-Former's, say)
      return new ApiError(400, msg, 'invalid_request_error', 'context_length_exceeded', 'messages');
    case 'BLIP5033':
      // a text with a token the model has no embedding for (a literal "<image>" for a Q-Former, say)
      return new ApiError(400, msg, 'invalid_request_error', 'invalid_token', null);
    default:
      return new ApiError(500, code ? `${code}: ${msg}` : `internal error: ${msg}`, 'server_error', code ?? null, null);
  }
}
