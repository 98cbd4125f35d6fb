// The runtime building blocks: everything between a compiled artifact and outputs.
export * from './errors.js';
export * from './preprocess/index.js';
export * from './tokenizers/index.js';
export * from './generation/index.js';
export * from './providers.js';
export * from './session.js';
export * from './model.js';
