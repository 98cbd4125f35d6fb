// Turns ajv attribute problems (src/ir/validate.ts) into diagnostics at the offending value.
import type { SourceLoc } from '../ir/types.js';
import { checkAttrs, schemaKeys, schemaProperty } from '../ir/validate.js';
import { didYouMean } from '../diagnostics/suggest.js';
import type { ValueSyntax } from '../syntax/ast.js';
import type { DraftAttr } from '../syntax/draft.js';
import { toIrValue, type CheckContext } from './CheckContext.js';

/** How a value is named in "found …". */
export function describeValue(v: ValueSyntax): string {
  const raw = 'raw' in v ? (v.raw.length > 40 ? v.raw.slice(0, 40) + '…' : v.raw) : '';
  switch (v.type) {
    case 'int':
    case 'float':
    case 'bool':
      return raw;
    case 'string':
      return `the string ${raw}`;
    case 'name':
      return `the name ${raw}`;
    case 'list':
      return `a list of ${v.items.length} item${v.items.length === 1 ? '' : 's'}`;
  }
}

const takesInteger = (schema: Record<string, unknown> | undefined): boolean => {
  const t = schema?.type;
  return t === 'integer' || (Array.isArray(t) && t.includes('integer') && !t.includes('number'));
};

/**
 * Validates `attrs` against schema `schemaId`; `owner` names them in messages ("vit 'vision'",
 * "the preprocess block"). `skip` keys are checked elsewhere (`config`); `offered` of them are listed
 * with the schema's keys when a key is unknown.
 */
export function reportAttrProblems(ctx: CheckContext, schemaId: string, attrs: Map<string, DraftAttr>, owner: string, skip: string[] = [], offered: string[] = skip): void {
  const values: Record<string, ReturnType<typeof toIrValue>> = {};
  for (const [k, a] of attrs) {
    if (!a.value || skip.includes(k)) continue;
    // An integer attribute takes an integer as written: `1e2` and `10.0` are numbers JSON Schema
    // would take as integers.
    if (a.value.type === 'float' && Number.isInteger(a.value.value) && takesInteger(schemaProperty(schemaId, k))) {
      ctx.report('BLIP3002', a.valueLoc, `attribute '${k}' of ${owner} expects an integer, found ${describeValue(a.value)} (write it without '.' or an exponent: ${a.value.value})`);
      continue;
    }
    values[k] = toIrValue(a.value);
  }
  for (const p of checkAttrs(schemaId, values)) {
    const key = String(p.path[0]);
    const attr = attrs.get(key);
    if (!attr) continue;
    if (p.code === 'BLIP3001') {
      const keys = [...schemaKeys(schemaId), ...offered];
      ctx.report('BLIP3001', attr.keyLoc, `unknown attribute '${key}' for ${owner}: expected one of ${keys.join(', ')}${didYouMean(key, keys)}`);
      continue;
    }
    let v: ValueSyntax = attr.value!;
    let loc: SourceLoc = attr.valueLoc;
    let what = `attribute '${key}' of ${owner}`;
    if (p.path.length > 1 && v.type === 'list' && typeof p.path[1] === 'number' && v.items[p.path[1]]) {
      v = v.items[p.path[1]];
      loc = attr.src.loc(v.start, v.end);
      what = `item ${p.path[1] + 1} of '${key}' (${owner})`;
    }
    if (p.code === 'BLIP3007') {
      ctx.report('BLIP3007', loc, `${what} expects ${p.expected}, found ${describeValue(v)}`);
      continue;
    }
    // (an enum may mix true / false with names: early_stopping's true, false, "never"; the
    // booleans as written, so Python's True gets 'true')
    const names = () => (p.error.params as { allowedValues: unknown[] }).allowedValues.flatMap((a) => (typeof a === 'string' ? [a] : typeof a === 'boolean' ? [String(a)] : []));
    const hint = p.code === 'BLIP3004' && 'value' in v && typeof v.value === 'string' ? didYouMean(v.value, names()) : '';
    ctx.report(p.code, loc, `${what} expects ${p.expected}, found ${describeValue(v)}${hint}`);
  }
}
