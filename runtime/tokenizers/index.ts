export * from './hf.js';
export * from './prompts.js';
export { parseSentencePieceModel, generateMerges, PieceType, type SpModel, type SpPiece } from './sentencepiece.js';
export { PrecompiledCharsmap } from './precompiled.js';
