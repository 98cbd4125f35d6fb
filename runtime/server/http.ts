// Reading request bodies (bounded) and writing JSON, errors and server-sent events with node:http.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, errorBody, type WireError } from './errors.js';

/** Read and parse a JSON request body of at most `limit` bytes. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (ct !== 'application/json' && !ct.endsWith('+json')) {
    req.resume();
    throw new ApiError(415, `the body must be JSON (Content-Type: application/json), found ${ct ? `Content-Type: ${ct}` : 'no Content-Type'}`, 'invalid_request_error', 'unsupported_media_type');
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw tooLarge(declared, limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume(); // drain without keeping it
        reject(tooLarge(size, limit));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve());
    req.on('error', (e) => reject(new ApiError(400, `cannot read the request body (${e.message})`, 'invalid_request_error', 'bad_body')));
    req.on('aborted', () => reject(new ApiError(400, 'the client aborted the request', 'invalid_request_error', 'aborted')));
  });
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new ApiError(400, 'the request body is empty; a JSON object was expected', 'invalid_request_error', 'invalid_json');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON (${(e as Error).message})`, 'invalid_request_error', 'invalid_json');
  }
}

function tooLarge(size: number, limit: number): ApiError {
  return new ApiError(413, `the request body is ${size > limit ? `more than ${limit}` : size} bytes; at most ${limit} are accepted (--max-body)`, 'invalid_request_error', 'request_too_large');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Answer with an error in OpenAI's shape (or, once an event stream has started, as a last event). */
export function sendError(res: ServerResponse, e: ApiError): void {
  if (res.headersSent) {
    if (!res.writableEnded) {
      res.write(`data: ${JSON.stringify(errorBody(e))}\n\n`);
      res.end();
    }
    return;
  }
  const headers: Record<string, string> = { ...e.headers };
  // clients retry 429 and 5xx; the rest would fail the same way again
  if (e.status < 500 && e.status !== 429) headers['x-should-retry'] = 'false';
  // a body not read to its end (a 413, or an error found before reading it: 404, 405, 415) is not
  // read on: the connection closes after the answer instead of draining an endless upload
  if (e.status === 413 || res.req?.complete === false) headers.Connection = 'close';
  sendJson(res, e.status, errorBody(e), headers);
}

/** A server-sent events response. */
export class EventStream {
  private started = false;
  constructor(private readonly res: ServerResponse) {}

  get open(): boolean {
    return !this.res.writableEnded && !this.res.destroyed;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    this.res.flushHeaders();
  }

  send(data: unknown): void {
    this.start();
    if (this.open) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  error(e: WireError | ApiError): void {
    if (!this.started) {
      sendError(this.res, e instanceof ApiError ? e : ApiError.fromWire(e));
      return;
    }
    if (this.open) {
      this.res.write(`data: ${JSON.stringify(errorBody(e))}\n\n`);
      this.res.end();
    }
  }

  done(): void {
    this.start();
    if (this.open) {
      this.res.write('data: [DONE]\n\n');
      this.res.end();
    }
  }
}
