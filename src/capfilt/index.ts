// CapFilt (BLIP's caption-and-filter data cleaning) over WebDataset shards and JSONL.
export * from './model.js';
export * from './inputs.js';
export * from './webdataset.js';
export * from './output.js';
export * from './shard.js';
export * from './run.js';
export * from './queue.js';
export { Progress, formatDuration } from './progress.js';
