// HuggingFace ACT2FN, for the activations BLIP-family checkpoints use: the one table both the node
// kinds' attribute schemas (ACTIVATIONS, its keys, re-exported by src/nodes/schema.ts) and lowering
// (transformer.ts activation()) read, so an `act` the checker accepts always lowers.
// Type-only imports: src/nodes/schema.ts imports this file, and nothing here may pull the lowering
// modules into the node kinds' schemas.
import type { GraphBuilder, Value } from './GraphBuilder.js';

export type ActivationOp = (b: GraphBuilder, x: Value, role: string) => Value;

const silu: ActivationOp = (b, x, role) => b.mul(x, b.op('Sigmoid', [x], {}, { name: `${role}_sigmoid` }), role);
const geluTanh: ActivationOp = (b, x, role) => b.geluTanh(x, role);

/** Activation name as HuggingFace configs spell it → its lowering. */
export const ACTIVATION_OPS: Readonly<Record<string, ActivationOp>> = {
  gelu: (b, x, role) => b.gelu(x, role),
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  quick_gelu: (b, x, role) => b.mul(x, b.op('Sigmoid', [b.mul(x, b.scalar(1.702), `${role}_scaled`)], {}, { name: `${role}_sigmoid` }), role),
  relu: (b, x, role) => b.op('Relu', [x], {}, { name: role }),
  silu,
  swish: silu,
  tanh: (b, x, role) => b.op('Tanh', [x], {}, { name: role }),
};

/** Activation names as HuggingFace configs spell them: what the node kinds' `act` attributes accept. */
export const ACTIVATIONS: string[] = Object.keys(ACTIVATION_OPS);
