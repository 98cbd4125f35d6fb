// Small builders for node-kind attribute schemas (JSON Schema, checked by ajv) and for reading
// HuggingFace config sections. Shared by the kind files in this folder.
import type { Attrs, JsonSchema } from './NodeKind.js';

/** A positive integer attribute (sizes, counts). */
export const int = (doc: string, minimum = 1, maximum = 1 << 24): JsonSchema => ({ type: 'integer', minimum, maximum, description: doc });
/** A small positive float such as a layer-norm epsilon. */
export const eps = (doc: string): JsonSchema => ({ type: 'number', exclusiveMinimum: 0, maximum: 0.1, description: doc });
export const num = (doc: string, minimum: number, maximum: number): JsonSchema => ({ type: 'number', minimum, maximum, description: doc });
export const bool = (doc: string): JsonSchema => ({ type: 'boolean', description: doc });
export const oneOf = (doc: string, values: string[]): JsonSchema => ({ type: 'string', enum: values, description: doc });

/** An attribute schema object: every property optional, nothing else allowed. */
export function attrSchema(kind: string, properties: Record<string, JsonSchema>): JsonSchema {
  return { $id: `blip:node/${kind}`, type: 'object', additionalProperties: false, properties };
}

/** Activation names as HuggingFace configs spell them. */
export { ACTIVATIONS } from '../lower/activations.js';

/**
 * Copies config keys to attributes: `map` is attr name → config key. Keys that are absent or null
 * are left out (the kind's defaults then apply at compile time); any other value is copied as it
 * is, for the compiler to check against the kind's schema (src/lower/resolve.ts: a list where a
 * size belongs is then reported as such, not as a size the checkpoint does not give).
 */
export function pick(section: Record<string, unknown>, map: Record<string, string>): Attrs {
  const out: Attrs = {};
  for (const [attr, key] of Object.entries(map)) {
    let v = section[key];
    // image_size / patch_size may be written as [h, w]; square ones collapse to one number.
    if (Array.isArray(v) && v.length === 2 && v[0] === v[1] && typeof v[0] === 'number') v = v[0];
    if (v !== undefined && v !== null) out[attr] = v as Attrs[string];
  }
  return out;
}

/** A number attribute, or undefined when absent or not a number. */
export const n = (attrs: Attrs, key: string): number | undefined => (typeof attrs[key] === 'number' ? (attrs[key] as number) : undefined);

/** A size as `blip graph` draws it (NodeKind.drawnSizes): '?' when neither pinned nor resolved. */
export const shown = (size: number | undefined): string => (size === undefined ? '?' : String(size));
