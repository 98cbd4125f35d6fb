// ajv, once: the node-kind attribute schemas (src/nodes/*.ts), the preprocess / generation block
// schemas and the IR schema (src/ir/schema/*.json). Attribute errors become BLIP3xxx diagnostics
// at the attribute's value; an IR that fails its schema is a front-end bug (BLIP3099).
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { nodeKinds } from '../nodes/index.js';
import type { IrProgram, IrValue, SourceLoc } from './types.js';
import type { Code } from '../diagnostics/codes.js';
import irSchema from './schema/ir.schema.json' with { type: 'json' };
import preprocessSchema from './schema/preprocess.schema.json' with { type: 'json' };
import generationSchema from './schema/generation.schema.json' with { type: 'json' };

const ajv = new Ajv({ allErrors: true, strict: true });
ajv.addSchema(preprocessSchema);
ajv.addSchema(generationSchema);
for (const k of Object.values(nodeKinds)) ajv.addSchema(k.attrSchema);
// The node kinds the IR may hold are the registry's, so that a kind is added in its own file only.
const { node } = irSchema.$defs;
const validateIrFn = ajv.compile({
  ...irSchema,
  $defs: { ...irSchema.$defs, node: { ...node, properties: { ...node.properties, kind: { ...node.properties.kind, enum: Object.keys(nodeKinds) } } } },
});

const validators = new Map<string, ValidateFunction>();
function validatorFor(schemaId: string): ValidateFunction {
  let v = validators.get(schemaId);
  if (!v) validators.set(schemaId, (v = ajv.getSchema(schemaId)!));
  return v;
}

/** The schema id of a node kind's attributes, or of a block. */
export const kindSchemaId = (kind: string): string => `blip:node/${kind}`;
export const blockSchemaId = (block: 'preprocess' | 'generation'): string => `blip:${block}`;

/** Property names a schema allows (for "expected one of" and "did you mean"). */
export function schemaKeys(schemaId: string): string[] {
  const s = ajv.getSchema(schemaId)?.schema as { properties?: Record<string, unknown> } | undefined;
  return Object.keys(s?.properties ?? {});
}

export function schemaProperty(schemaId: string, key: string): Record<string, unknown> | undefined {
  const s = ajv.getSchema(schemaId)?.schema as { properties?: Record<string, Record<string, unknown>> } | undefined;
  return s?.properties?.[key];
}

export interface AttrProblem {
  code: Code;
  /** Path inside the attributes object: [key] or [key, index]. */
  path: Array<string | number>;
  /** What was expected, in words ("an integer >= 1", "one of cls, mean_queries", "3 items"). */
  expected: string;
  error: ErrorObject;
}

const TYPE_WORDS: Record<string, string> = { integer: 'an integer', number: 'a number', string: 'a string', boolean: 'true or false', array: 'a list', object: 'an object' };

/** Validates attribute values against a schema and explains each error. */
export function checkAttrs(schemaId: string, values: Record<string, IrValue>): AttrProblem[] {
  const v = validatorFor(schemaId);
  if (v(values)) return [];
  const out: AttrProblem[] = [];
  for (const error of v.errors ?? []) {
    const path: Array<string | number> = error.instancePath
      .split('/')
      .slice(1)
      .map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
    const p = error.params as Record<string, unknown>;
    switch (error.keyword) {
      case 'additionalProperties':
        out.push({ code: 'BLIP3001', path: [...path, String(p.additionalProperty)], expected: '', error });
        break;
      case 'type':
        out.push({ code: 'BLIP3002', path, expected: TYPE_WORDS[String(p.type)] ?? String(p.type), error });
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        out.push({ code: 'BLIP3003', path, expected: `a value ${String(p.comparison)} ${String(p.limit)}`, error });
        break;
      case 'enum':
        out.push({ code: 'BLIP3004', path, expected: `one of ${(p.allowedValues as unknown[]).join(', ')}`, error });
        break;
      case 'minItems':
      case 'maxItems': {
        const n = (schemaProperty(schemaId, String(path[0])) ?? {}) as { minItems?: number; maxItems?: number };
        const expected = n.minItems === n.maxItems ? `${n.minItems} items` : error.keyword === 'minItems' ? `at least ${p.limit} items` : `at most ${p.limit} items`;
        out.push({ code: 'BLIP3007', path, expected, error });
        break;
      }
      default:
        out.push({ code: 'BLIP3002', path, expected: error.message ?? 'a valid value', error });
    }
  }
  // One problem per value: `image_size: 2.5` is "not an integer", not also "below 16".
  const seen = new Set<string>();
  return out.filter((pr) => {
    const k = pr.path.join('/');
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Schema errors of a whole IR program (empty when it conforms). */
export function validateIr(program: IrProgram): ErrorObject[] {
  return validateIrFn(program) ? [] : [...(validateIrFn.errors ?? [])];
}

export type { SourceLoc };
