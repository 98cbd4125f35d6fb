export { BlipError, type BlipCode } from './BlipError.js';
export { CODES, type Code, type CodeInfo } from './codes.js';
export { diagnostic, hasErrors, sortDiagnostics, type Diagnostic, type RelatedInfo, type Severity } from './Diagnostic.js';
export { SourceFile } from './SourceFile.js';
export { codeFrame } from './codeFrame.js';
export { formatDiagnostic, formatDiagnostics, diagnosticsToJson, type Sources, type JsonDiagnostic, type FormatOptions } from './format.js';
