import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { foldOutputIdentities, graphProblems, opHistogram, pruneDead } from '../../../src/lower/graphCheck.js';

function graph() {
  const store = new WeightStore();
  const b = new GraphBuilder('g', store);
  const x = b.input('x', 'float32', ['batch', 2]);
  const w = b.weight({ key: 'used.weight', dims: [2, 2], produce: () => new Float32Array(4) });
  const dead = b.weight({ key: 'dead.weight', dims: [2, 2], produce: () => new Float32Array(4) });
  const y = b.matmul(x, w, 'y');
  b.matmul(b.add(x, b.scalar(1), 'unused_add'), dead, 'unused'); // reaches no output
  b.output(b.op('Relu', [y], {}, { name: 'relu' }), 'out', 'float32');
  return b;
}

test('pruneDead drops nodes, constants and weights no output needs', () => {
  const b = graph();
  assert.equal(pruneDead(b), 2);
  assert.deepEqual(opHistogram(b.nodes), { MatMul: 1, Relu: 1, Identity: 1 });
  assert.deepEqual([...b.weightNames], ['used.weight']);
  assert.deepEqual(b.constants, []);
  assert.deepEqual(graphProblems(b), []);
});

test('foldOutputIdentities names the output at its producer', () => {
  const b = graph();
  pruneDead(b);
  assert.equal(foldOutputIdentities(b), 1);
  assert.deepEqual(b.nodes.map((n) => [n.opType, n.output]), [['MatMul', ['y']], ['Relu', ['out']]]);
  assert.deepEqual(graphProblems(b), []);
});

test('graphProblems finds use before definition, double definition and missing outputs', () => {
  const b = graph();
  b.nodes.unshift({ opType: 'Neg', input: ['later'], output: ['y'], name: 'bad' });
  b.outputs.push({ name: 'nowhere' });
  const problems = graphProblems(b);
  assert.ok(problems.some((p) => /node bad \(Neg\) reads "later" before it is defined/.test(p)));
  assert.ok(problems.some((p) => /value "y" is defined twice/.test(p)));
  assert.ok(problems.some((p) => /graph output "nowhere" is never computed/.test(p)));
});
