// A small tape for building one ONNX graph, so that lowering code reads like model code:
//
//   const h = b.scope('layer.0.attention', () => attention(b, x, ...));
//
// Values are named `<scope>/<role>`; node names `<scope>/<OpType>_<n>`. Checkpoint tensors enter
// through `b.weight(key, ...)`: the initializer is named after the checkpoint key (so a tensor read
// by two nodes or two graphs is one initializer, stored once in the WeightStore), and its bytes are
// produced lazily, one tensor at a time, when the WeightStore streams them to disk.
// This is the only file besides emitOnnx.ts that touches onnx-proto.
import onnxProto from 'onnx-proto';
import type { WeightStore, WeightSpec } from './WeightStore.js';
import { float32ToFloat16 } from '../weights/float16.js';

export const { onnx } = onnxProto;
export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8';

export const ONNX_DTYPE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
};

/** A named value in the graph under construction. */
export class Value {
  constructor(
    readonly name: string,
    readonly graph: GraphBuilder,
  ) {}
  toString(): string {
    return this.name;
  }
}

/** Attribute values: integers are INT, `float(x)` marks FLOAT, arrays of integers are INTS. */
export type AttrValue =
  | number
  | string
  | number[]
  | { float: number }
  | { floats: number[] }
  | { graph: onnxProto.onnx.IGraphProto }
  | { tensor: onnxProto.onnx.ITensorProto };

export const float = (x: number): { float: number } => ({ float: x });
export const floats = (xs: number[]): { floats: number[] } => ({ floats: xs });

export interface OpOptions {
  domain?: string;
  /** Number of outputs (default 1) or explicit output roles. */
  outputs?: number | string[];
  /** Role used to name the (first) output; defaults to the lower-cased op type. */
  name?: string;
}

function attrProto(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: ${v} is not an integer; wrap floats with float()`);
    return { name, type: A.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: A.STRING, s: Buffer.from(v, 'utf8') };
  if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
  if ('float' in v) return { name, type: A.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: A.FLOATS, floats: v.floats };
  if ('graph' in v) return { name, type: A.GRAPH, g: v.graph };
  return { name, type: A.TENSOR, t: v.tensor };
}

export function valueInfo(name: string, dtype: DType, dims?: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[dtype],
        shape: dims ? { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } : undefined,
      },
    },
  };
}

export class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  /** Small constants kept inside the .onnx file (shapes, scalars, axes). */
  readonly constants: onnxProto.onnx.ITensorProto[] = [];
  /** Checkpoint-backed initializers (bytes live in the WeightStore's external data file). */
  readonly weightNames = new Set<string>();
  private readonly scopes: string[] = [];
  private readonly counters = new Map<string, number>();
  private readonly used = new Set<string>();
  /** Source location of the node being lowered (stamped into NodeProto.docString). */
  origin = '';

  private currentFloatType: 'float32' | 'float16';

  constructor(
    readonly name: string,
    readonly weights: WeightStore,
  ) {
    this.currentFloatType = weights.floatType;
  }

  /**
   * Float type of the arithmetic and of the checkpoint weights being lowered: the WeightStore's,
   * except inside `withFloatType`.
   */
  get floatType(): 'float32' | 'float16' {
    return this.currentFloatType;
  }

  /**
   * Lower `fn` in float type `ft`: its float constants and checkpoint weights are of that type
   * (weights stay float32 in a float16 store), as transformers keeps some modules in float32 in a
   * float16 model (`_keep_in_fp32_modules`: BLIP-2's Q-Former and query tokens).
   * The caller casts what enters and leaves.
   */
  withFloatType<T>(ft: 'float32' | 'float16', fn: () => T): T {
    const prev = this.currentFloatType;
    this.currentFloatType = ft;
    try {
      return fn();
    } finally {
      this.currentFloatType = prev;
    }
  }

  /** Run `fn` with `name` appended to the naming scope. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private prefix(): string {
    return this.scopes.join('.');
  }

  /** A unique value name `<scope>/<role>` (suffixed `_n` on reuse). */
  fresh(role: string): string {
    const p = this.prefix();
    const base = p ? `${p}/${role}` : role;
    let name = base;
    for (let n = 1; this.used.has(name); n++) name = `${base}_${n}`;
    this.used.add(name);
    return name;
  }

  input(name: string, dtype: DType, dims: (number | string)[]): Value {
    this.used.add(name);
    this.inputs.push(valueInfo(name, dtype, dims));
    return new Value(name, this);
  }

  /** Declare `v` a graph output called `name` (an Identity is inserted when the names differ). */
  output(v: Value, name: string, dtype: DType, dims?: (number | string)[]): Value {
    let out = v;
    if (v.name !== name) {
      this.used.add(name);
      this.nodes.push({ opType: 'Identity', input: [v.name], output: [name], name: `${name}/Identity`, domain: '' });
      out = new Value(name, this);
    }
    this.outputs.push(valueInfo(name, dtype, dims));
    return out;
  }

  /** Emit one node; returns its outputs. `undefined` inputs become empty (omitted optional) inputs. */
  ops(opType: string, inputs: (Value | undefined)[], attrs: Record<string, AttrValue | undefined> = {}, opts: OpOptions = {}): Value[] {
    const roles =
      typeof opts.outputs === 'object' ? opts.outputs : Array.from({ length: opts.outputs ?? 1 }, (_, i) => (i === 0 ? opts.name ?? opType.toLowerCase() : `${opts.name ?? opType.toLowerCase()}_${i}`));
    const outNames = roles.map((r) => (r === '' ? '' : this.fresh(r)));
    const p = this.prefix();
    const key = `${p}/${opType}`;
    const n = this.counters.get(key) ?? 0;
    this.counters.set(key, n + 1);
    // Trailing omitted inputs are dropped; inner ones stay as '' (ONNX's "absent optional input").
    const names = inputs.map((v) => (v ? v.name : ''));
    while (names.length && names[names.length - 1] === '') names.pop();
    this.nodes.push({
      opType,
      domain: opts.domain ?? '',
      input: names,
      output: outNames,
      name: `${p ? p + '/' : ''}${opType}_${n}`,
      attribute: Object.entries(attrs)
        .filter((e): e is [string, AttrValue] => e[1] !== undefined)
        .map(([k, v]) => attrProto(k, v)),
      docString: this.origin || undefined,
    });
    return outNames.map((nm) => new Value(nm, this));
  }

  /** Emit one single-output node. */
  op(opType: string, inputs: (Value | undefined)[], attrs: Record<string, AttrValue | undefined> = {}, opts: OpOptions = {}): Value {
    return this.ops(opType, inputs, attrs, { ...opts, outputs: 1 })[0];
  }

  /** An int64 constant kept in the graph (shapes, axes, indices). */
  int64(values: number[], dims: number[] = [values.length], role = 'const'): Value {
    const name = this.fresh(role);
    this.constants.push({ name, dataType: ONNX_DTYPE.int64, dims, int64Data: values });
    return new Value(name, this);
  }

  /** A float32 constant kept in the graph. */
  float32(values: number[] | Float32Array, dims: number[] = [values.length], role = 'const'): Value {
    const name = this.fresh(role);
    this.constants.push({ name, dataType: ONNX_DTYPE.float32, dims, floatData: Array.from(values) });
    return new Value(name, this);
  }

  /** A float constant in the graph's float type (float16 graphs get float16 constants). */
  constant(values: number[] | Float32Array, dims: number[] = [values.length], role = 'const'): Value {
    if (this.floatType === 'float32') return this.float32(values, dims, role);
    const name = this.fresh(role);
    const h = float32ToFloat16(Float32Array.from(values));
    this.constants.push({ name, dataType: ONNX_DTYPE.float16, dims, rawData: new Uint8Array(h.buffer, h.byteOffset, h.byteLength) });
    return new Value(name, this);
  }

  /** A scalar (0-d) constant in the graph's float type. */
  scalar(x: number, role = 'scalar'): Value {
    return this.constant([x], [], role);
  }

  /**
   * A checkpoint-backed weight. `spec.key` names the initializer (use the checkpoint key, or
   * `<key>:<transform>` for a transformed view such as a transpose); registering the same key twice
   * (from any graph sharing the store) yields the same initializer, stored once (in a float16 store, a
   * float32 and a float16 read of one key are two: WeightStore.define).
   */
  weight(spec: WeightSpec): Value {
    const float = (spec.dtype ?? 'float32') === 'float32';
    if (float && this.floatType === 'float32' && this.weights.floatType === 'float16' && !spec.storeAs) spec = { ...spec, storeAs: 'float32' };
    const name = this.weights.define(spec);
    this.weightNames.add(name);
    return new Value(name, this);
  }

  // ---- a few helpers used by every node kind ----

  matmul(a: Value, b: Value, role?: string): Value {
    return this.op('MatMul', [a, b], {}, { name: role ?? 'matmul' });
  }
  add(a: Value, b: Value, role?: string): Value {
    return this.op('Add', [a, b], {}, { name: role ?? 'add' });
  }
  mul(a: Value, b: Value, role?: string): Value {
    return this.op('Mul', [a, b], {}, { name: role ?? 'mul' });
  }
  reshape(x: Value, shape: number[], role = 'reshape'): Value {
    return this.op('Reshape', [x, this.int64(shape, [shape.length], `${role}_shape`)], {}, { name: role });
  }
  transpose(x: Value, perm: number[], role = 'transpose'): Value {
    return this.op('Transpose', [x], { perm }, { name: role });
  }
  concat(xs: Value[], axis: number, role = 'concat'): Value {
    return this.op('Concat', xs, { axis }, { name: role });
  }
  softmax(x: Value, axis = -1, role = 'softmax'): Value {
    return this.op('Softmax', [x], { axis }, { name: role });
  }
  cast(x: Value, to: DType, role = 'cast'): Value {
    return this.op('Cast', [x], { to: ONNX_DTYPE[to] }, { name: role });
  }
  /** x @ W + b for a (in, out) weight and optional (out) bias. */
  linear(x: Value, w: Value, bias?: Value, role = 'linear'): Value {
    const y = this.matmul(x, w, role);
    return bias ? this.add(y, bias, `${role}_bias`) : y;
  }
  layerNorm(x: Value, gamma: Value, beta: Value | undefined, eps: number, role = 'layernorm'): Value {
    return this.op('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: float(eps) }, { name: role });
  }
  /** Exact (erf) GELU: 0.5·x·(1 + erf(x/√2)). */
  gelu(x: Value, role = 'gelu'): Value {
    const half = this.mul(x, this.scalar(0.5), `${role}_half`);
    const erf = this.op('Erf', [this.mul(x, this.scalar(Math.SQRT1_2), `${role}_scaled`)], {}, { name: `${role}_erf` });
    return this.mul(half, this.add(erf, this.scalar(1), `${role}_1p`), role);
  }
  /** tanh-approximated GELU (HF "gelu_new" / "gelu_pytorch_tanh"). */
  geluTanh(x: Value, role = 'gelu_tanh'): Value {
    const x3 = this.mul(this.mul(x, x, `${role}_x2`), x, `${role}_x3`);
    const inner = this.mul(this.add(x, this.mul(x3, this.scalar(0.044715), `${role}_c`), `${role}_sum`), this.scalar(Math.sqrt(2 / Math.PI)), `${role}_inner`);
    const t = this.op('Tanh', [inner], {}, { name: `${role}_tanh` });
    return this.mul(this.mul(x, this.scalar(0.5), `${role}_half`), this.add(t, this.scalar(1), `${role}_1p`), role);
  }

  sub(a: Value, b: Value, role?: string): Value {
    return this.op('Sub', [a, b], {}, { name: role ?? 'sub' });
  }
  div(a: Value, b: Value, role?: string): Value {
    return this.op('Div', [a, b], {}, { name: role ?? 'div' });
  }
  /** Dimensions `start..end` of x's shape, as a 1-D int64 tensor. */
  shape(x: Value, start: number, end?: number, role = 'shape'): Value {
    return this.op('Shape', [x], { start, end }, { name: role });
  }
  /** One dimension of x's shape as a 0-d int64 scalar. */
  dim(x: Value, axis: number, role = 'dim'): Value {
    return this.squeeze(this.shape(x, axis, axis + 1, `${role}_1d`), [0], role);
  }
  gather(x: Value, indices: Value, axis: number, role = 'gather'): Value {
    return this.op('Gather', [x, indices], { axis }, { name: role });
  }
  unsqueeze(x: Value, axes: number[], role = 'unsqueeze'): Value {
    return this.op('Unsqueeze', [x, this.int64(axes, [axes.length], `${role}_axes`)], {}, { name: role });
  }
  squeeze(x: Value, axes: number[], role = 'squeeze'): Value {
    return this.op('Squeeze', [x, this.int64(axes, [axes.length], `${role}_axes`)], {}, { name: role });
  }
  where(cond: Value, a: Value, b: Value, role = 'where'): Value {
    return this.op('Where', [cond, a, b], {}, { name: role });
  }
  /** int64 0-d scalars start, start+1, ..., limit-1 as a 1-D tensor. */
  range(start: Value, limit: Value, role = 'range'): Value {
    return this.op('Range', [start, limit, this.int64([1], [], `${role}_delta`)], {}, { name: role });
  }
}
