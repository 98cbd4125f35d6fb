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
    throw tooLarge(limit, declared);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume(); // drain without keeping it
        reject(tooLarge(limit));
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

/** 413 for a body over `limit`: its size where Content-Length declares it, else "more than". */
function tooLarge(limit: number, declared?: number): ApiError {
  return new ApiError(413, `the request body is ${declared ?? `more than ${limit}`} bytes; at most ${limit} are accepted (--max-body)`, 'invalid_request_error', 'request_too_large');
}

/**
 * How much of a body the server reads on, and drops, after answering before it has read it all
 * (413, or 404 / 405 / 415 / 503 found from the headers), as a multiple of --max-body. Closing the
 * connection while the client still uploads makes its next write fail: Node's fetch and the openai
 * client then report EPIPE / "fetch failed" (or retry and upload it again) without reading the
 * answer (5 of 10 at 21 MiB with a 20 MiB --max-body); curl, which reads while it uploads, saw the
 * 413. So the connection is closed only once the body has ended. The bound is in bytes because
 * bandwidth is what a refused body costs (its chunks are dropped as they come, so memory is not,
 * and a slow client holds one socket as any upload does, until Node's requestTimeout, 300 s): a
 * body a few times over the limit (an image too many, or too large) is read to its end and its
 * client reads the answer, one declared larger is not read at all, and an endless chunked upload
 * is cut after this many bytes.
 */
export const READ_ON_FACTOR = 4;

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

/**
 * Answer with an error in OpenAI's shape (or, once an event stream has started, as a last event).
 * `readOn`: the most bytes of a body not read to its end yet that may be read and dropped before
 * the connection closes (see READ_ON_FACTOR); 0 closes it after the answer.
 */
export function sendError(res: ServerResponse, e: ApiError, readOn = 0): void {
  if (res.headersSent) {
    if (!res.writableEnded && String(res.getHeader('content-type')).startsWith('text/event-stream')) {
      res.write(`data: ${JSON.stringify(errorBody(e))}\n\n`);
      res.end();
    }
    return;
  }
  const headers: Record<string, string> = { ...e.headers };
  // clients retry 429 and 5xx; the rest would fail the same way again
  if (e.status < 500 && e.status !== 429) headers['x-should-retry'] = 'false';
  // a body not read to its end (a 413, or an error found before reading it: 404, 405, 415, 503) is
  // not read for the next request: the connection closes after the answer
  const req = res.req as IncomingMessage | undefined;
  const unread = req !== undefined && !req.complete && !req.destroyed;
  if (e.status === 413 || unread) headers.Connection = 'close';
  const declared = Number(req?.headers['content-length']);
  if (!unread || readOn <= 0 || (Number.isFinite(declared) && declared > readOn)) return sendJson(res, e.status, errorBody(e), headers);
  // the whole answer now; its end (and so the close) once the body has ended, up to readOn bytes on
  const text = JSON.stringify(errorBody(e));
  res.writeHead(e.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.write(text);
  void readToEnd(req, readOn).then(() => res.end());
}

/** Read and drop the rest of a body: resolves at its end, when the connection closes, or past `most` bytes. */
function readToEnd(req: IncomingMessage, most: number): Promise<void> {
  return new Promise((resolve) => {
    let size = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', done);
      req.off('close', done);
      resolve();
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > most) done();
    };
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.resume();
  });
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
