// GraphView.elemType: the element type a value has where the graph shows it (the float16 fusions
// rely on it to tell a float16 value from a float32 one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphView, type Fusion } from '../../../src/rewrite/graph.js';
import { build } from './harness.js';

const FLOAT = 1;
const FLOAT16 = 10;
const INT64 = 7;

test('elemType: weights, inputs, Casts, and through arithmetic, products and reshapes; undefined where not evident', () => {
  const names: Record<string, string> = {};
  const b = build((b, w) => {
    const x = b.input('x', 'float32', ['B', 4]);
    const ids = b.input('ids', 'int64', ['B', 4]);
    const x16 = b.cast(x, 'float16', 'x16');
    const wt = w('w', [4, 4]); // a float16 store: stored as float16
    const y = b.add(b.matmul(x16, wt, 'prod'), x16, 'sum');
    const r = b.reshape(y, [0, -1], 'flat');
    const back = b.cast(r, 'float32', 'back');
    const odd = b.op('Erf', [back], {}, { name: 'odd' });
    Object.assign(names, { x: x.name, ids: ids.name, x16: x16.name, wt: wt.name, y: y.name, r: r.name, back: back.name, odd: odd.name });
    b.output(odd, 'out', 'float32');
    b.output(b.cast(ids, 'float32', 'ids32'), 'ids_out', 'float32');
  }, 'float16');
  const g = new GraphView(b);
  assert.equal(g.elemType(names.x), FLOAT);
  assert.equal(g.elemType(names.ids), INT64);
  assert.equal(g.elemType(names.x16), FLOAT16);
  assert.equal(g.elemType(names.wt), FLOAT16);
  assert.equal(g.elemType(names.y), FLOAT16, 'Add(MatMul(float16, float16), float16)');
  assert.equal(g.elemType(names.r), FLOAT16, 'a Reshape keeps its data input type');
  assert.equal(g.elemType(names.back), FLOAT);
  assert.equal(g.elemType(names.odd), undefined, 'an op it does not model');
  assert.equal(g.elemType('no such value'), undefined);
});

test("elemType sees through a fused operator as the fusion that emits it declares (`emits`), graph.ts naming none", () => {
  const names: Record<string, string> = {};
  const b = build((b) => {
    const x16 = b.cast(b.input('x', 'float32', ['B', 4]), 'float16', 'x16');
    const unknown = b.op('Erf', [x16], {}, { name: 'erf' }); // an op elemType does not model
    const fast = b.op('FastGelu', [unknown, x16], {}, { name: 'fast', domain: 'com.microsoft' });
    const rope = b.op('Rope', [unknown, x16], {}, { name: 'rope', domain: 'com.microsoft' });
    Object.assign(names, { fast: fast.name, rope: rope.name });
    b.output(b.cast(fast, 'float32', 'fast32'), 'y', 'float32');
    b.output(b.cast(rope, 'float32', 'rope32'), 'z', 'float32');
  }, 'float16');
  const fusion: Fusion = { name: 'Test', emits: { 'com.microsoft.FastGelu': 'inputs', 'com.microsoft.Rope': 'input0' }, applies: () => true, run: () => 0 };
  assert.equal(new GraphView(b).elemType(names.fast), undefined, 'an operator no fusion of the view declares');
  const g = new GraphView(b, [fusion]);
  assert.equal(g.elemType(names.fast), FLOAT16, "'inputs': the first input whose type shows");
  assert.equal(g.elemType(names.rope), undefined, "'input0': input 0's type alone");
});
