// `blip serve`: the OpenAI-compatible HTTP server (docs/serve.md).
export { startServer, SERVE_DEFAULTS, type BlipServer, type ServeOptions } from './server.js';
export { parseModelArg, type ModelEntry } from './catalog.js';
export { ApiError, type WireError } from './errors.js';
export type { ServedModel, LoadFn } from './protocol.js';
