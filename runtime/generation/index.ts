export * from './types.js';
export * from './generate.js';
export * from './processors.js';
export * from './random.js';
export * from './streamer.js';
export * from './onnx.js';
export * from './config.js';
