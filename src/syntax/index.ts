// The front end's public API, for the compiler and the CLI.
export { loadProgram, type LoadOptions, type LoadResult } from './load.js';
export { parse, type ParseResult } from './parse.js';
export { formatProgram, formatSource } from './print.js';
export { checkWidths, sizeProblems, type WidthNode } from '../checks/index.js';
export { formatDiagnostics, formatDiagnostic, diagnosticsToJson, type Sources } from '../diagnostics/format.js';
export { diagnostic, hasErrors, type Diagnostic } from '../diagnostics/Diagnostic.js';
export { SourceFile } from '../diagnostics/SourceFile.js';
