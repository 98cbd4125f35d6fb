// Every diagnostic code the front end reports, with its severity and a title. Codes are never
// reused. Ranges: 1xxx lexing and parsing, 2xxx names, graph and widths (src/checks), 3xxx
// attribute and IR schemas (ajv), 4xxx lowering and checkpoints (src/lower, src/weights), 5xxx
// runtime. docs/diagnostics.md has one entry per code with an example; a test keeps them in step.
import type { Severity } from './Diagnostic.js';

export interface CodeInfo {
  severity: Severity;
  title: string;
}

const e = (title: string): CodeInfo => ({ severity: 'error', title });
const w = (title: string): CodeInfo => ({ severity: 'warning', title });

export const CODES = {
  // 1xxx: lexing and parsing (grammar/, src/syntax/parse.ts)
  BLIP1001: e('unexpected character'),
  BLIP1002: e('unterminated string'),
  BLIP1003: e('unterminated block comment'),
  BLIP1004: e('invalid escape in a string'),
  BLIP1005: e('number out of range'),
  BLIP1006: e('malformed number'),
  BLIP1010: e('unexpected token'),
  BLIP1011: e('no construct starts here'),
  BLIP1012: e('unexpected text between declarations'),
  BLIP1013: e('no model declared'),
  BLIP1014: e('nesting too deep'),
  BLIP1015: e('file too large'),

  // 2xxx: files, names, the graph and its widths (src/syntax/load.ts, src/checks/)
  BLIP2001: e('cannot read file'),
  BLIP2002: e('duplicate model'),
  BLIP2003: e('unknown base model'),
  BLIP2004: e('cyclic extends'),
  BLIP2005: e('duplicate name'),
  BLIP2006: e('override of nothing inherited'),
  BLIP2007: e('redeclaration without override'),
  BLIP2008: e('input redeclared with another type'),
  BLIP2009: e('duplicate block'),
  BLIP2010: e('unknown node kind'),
  BLIP2011: e('unknown input type'),
  BLIP2012: e('unknown task'),
  BLIP2020: e('unknown node or input'),
  BLIP2021: e('unknown port'),
  BLIP2022: e('port given twice'),
  BLIP2023: e('missing input'),
  BLIP2024: e('wrong type on an edge'),
  BLIP2025: e('wrong number of task arguments'),
  BLIP2026: e('wrong kind of task argument'),
  BLIP2027: e('cycle'),
  BLIP2028: e('output not reached from any input'),
  BLIP2029: e('model without outputs'),
  BLIP2030: w('unused node'),
  BLIP2031: w('unused input'),
  BLIP2032: e('node without checkpoint prefix'),
  BLIP2033: e('attribute contradicts the inputs'),
  BLIP2034: e('outputs that make no one compiled model'),
  BLIP2035: e('a second image or text input'),
  BLIP2036: e('itc() side computed from the wrong input'),
  BLIP2037: e('pooling that does not fit the features'),
  BLIP2038: e('Q-Former text: input where an instruction is meant'),
  BLIP2039: e('generated text that does not depend on the image'),
  BLIP2040: e('width mismatch on an edge'),
  BLIP2041: e('inconsistent sizes in a node'),
  BLIP2042: e('ITM score that does not depend on the image or the text'),
  BLIP2043: w('length bounded both ways in one block'),

  // 3xxx: attribute and IR schemas (src/ir/validate.ts, ajv)
  BLIP3001: e('unknown attribute'),
  BLIP3002: e('attribute of the wrong type'),
  BLIP3003: e('attribute out of range'),
  BLIP3004: e('attribute not one of the allowed values'),
  BLIP3005: e('attribute given twice'),
  BLIP3006: e('bad config section'),
  BLIP3007: e('list of the wrong length'),
  BLIP3099: e('internal: IR does not match its schema'),
  // 4xxx: lowering and checkpoints (blip compile: src/lower, src/weights)
  BLIP4001: e('checkpoint directory, config.json or tokenizer unreadable'),
  BLIP4002: e('no safetensors weights'),
  BLIP4003: e('corrupt safetensors header'),
  BLIP4004: e('truncated safetensors file'),
  BLIP4005: e('unsupported tensor dtype'),
  BLIP4006: e('inconsistent shard index'),
  BLIP4010: e('missing tensor'),
  BLIP4011: e('unexpected tensor'),
  BLIP4012: e('tensor of the wrong shape'),
  BLIP4013: e('pinned attribute disagrees with the checkpoint'),
  BLIP4014: e('attribute neither pinned nor in the checkpoint'),
  BLIP4015: e('cannot be compiled'),
  BLIP4016: e('output directory is not a compiled model'),
  BLIP4017: e('checkpoint value the node cannot take'),
  BLIP4018: e('the compiled model cannot be written'),
  BLIP4019: e('the checkpoint is another model than the file describes'),

  // 5xxx: runtime (blip run, blip serve, blip capfilt: runtime/, src/artifact, src/capfilt)
  BLIP5001: e('no manifest.json'),
  BLIP5002: e('invalid manifest'),
  BLIP5003: e('compiled by another format version'),
  BLIP5004: e('compiled directory incomplete'),
  BLIP5010: e('cannot read image'),
  BLIP5011: e('cannot process image'),
  BLIP5012: e('bad preprocessing configuration'),
  BLIP5020: e('cannot load tokenizer'),
  BLIP5021: e('cannot convert SentencePiece model'),
  BLIP5030: e('bad generation settings'),
  BLIP5031: e('bad model step output'),
  BLIP5032: e('text longer than the model can take'),
  BLIP5033: e('text has a token the model has no embedding for'),
  BLIP5040: e('unknown device'),
  BLIP5041: e('execution provider not installed'),
  BLIP5042: e('execution provider unusable'),
  BLIP5043: e('ONNX session failure'),
  BLIP5044: e('decoder contract mismatch'),
  BLIP5801: e('CapFilt input unreadable'),
  BLIP5802: e('CapFilt output not a folder'),
  BLIP5803: e('CapFilt resume with other settings'),
  BLIP5804: e('CapFilt queue unreachable'),
  BLIP5805: e('CapFilt model of the wrong task'),
  BLIP5806: e('CapFilt model unusable'),
} as const satisfies Record<string, CodeInfo>;

export type Code = keyof typeof CODES;
