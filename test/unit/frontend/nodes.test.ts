// Node kinds against real configs: for every tiny checkpoint under test/fixtures, each node of
// the matching shipped graph gets its attributes from config.json (fromConfig) or from tensor
// shapes (fromShapes); those attributes satisfy the kind's schema and agree along every edge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, openSync, readSync, closeSync } from 'node:fs';
import { nodeKinds } from '../../../src/nodes/index.js';
import type { Attrs } from '../../../src/nodes/NodeKind.js';
import { checkAttrs, kindSchemaId } from '../../../src/ir/validate.js';
import { checkWidths, sizeProblems } from '../../../src/checks/index.js';
import { loadProgram } from '../../../src/syntax/load.js';

/** Tensor shapes from a safetensors header (8-byte little-endian length, then JSON). */
function shapes(file: string): Map<string, number[]> {
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE());
    const header = Buffer.alloc(n);
    readSync(fd, header, 0, n, 8);
    const json = JSON.parse(header.toString('utf8')) as Record<string, { shape?: number[] }>;
    return new Map(Object.entries(json).filter(([k]) => k !== '__metadata__').map(([k, v]) => [k, v.shape ?? []]));
  } finally {
    closeSync(fd);
  }
}

const FIXTURES = 'test/fixtures';
const fixtures = existsSync(FIXTURES) ? readdirSync(FIXTURES).filter((d) => existsSync(`${FIXTURES}/${d}/checkpoint/config.json`)) : [];

/** blip2-opt-legacy -> graphs/blip2-opt.blip */
const graphFor = (fixture: string): string | undefined => {
  const base = fixture.replace(/-(a|b|legacy)$/, '');
  return existsSync(`graphs/${base}.blip`) ? `graphs/${base}.blip` : undefined;
};

for (const fixture of fixtures) {
  const graph = graphFor(fixture);
  if (!graph) continue;
  test(`${fixture}: attributes from config.json and tensor shapes fit ${graph}`, () => {
    const dir = `${FIXTURES}/${fixture}/checkpoint`;
    const root = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')) as Record<string, unknown>;
    const tensors = new Map<string, number[]>();
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) for (const [k, v] of shapes(`${dir}/${f}`)) tensors.set(k, v);
    const r = loadProgram(graph);
    assert.ok(r.program);
    const model = r.program.models[0];
    const attrsByNode: Record<string, Attrs> = {};
    for (const node of model.nodes) {
      const kind = nodeKinds[node.kind];
      let attrs: Attrs = {};
      if (node.config) {
        const section = root[node.config] as Record<string, unknown> | undefined;
        assert.ok(section && typeof section === 'object', `${node.name}: no section ${node.config}`);
        attrs = kind.fromConfig!(section, root);
      } else if (kind.fromShapes) {
        attrs = kind.fromShapes((k) => tensors.get(k), node.checkpoint);
        assert.ok(Object.keys(attrs).length, `${node.name}: no tensors under ${node.checkpoint}`);
      }
      attrs = { ...attrs, ...node.attrs };
      assert.deepEqual(checkAttrs(kindSchemaId(node.kind), attrs).map((p) => `${p.code} ${p.path.join('.')}: expected ${p.expected}`), [], `${node.name} (${node.kind})`);
      assert.deepEqual(sizeProblems(node.kind, attrs), [], node.name);
      assert.ok(kind.outputWidth(attrs) !== undefined, `${node.name}: output width unknown from ${JSON.stringify(attrs)}`);
      attrsByNode[node.name] = attrs;
    }
    assert.deepEqual(checkWidths(model, attrsByNode).map((d) => d.message), []);
  });
}

test('qformer: the query count comes from the root config', () => {
  const a = nodeKinds.qformer.fromConfig!({ hidden_size: 768, encoder_hidden_size: 1408, cross_attention_frequency: 2 }, { num_query_tokens: 32 });
  assert.deepEqual(a, { width: 768, encoder_width: 1408, cross_attention_frequency: 2, queries: 32 });
});

test('llama: rope theta top-level or under rope_parameters; kv heads default to heads', () => {
  assert.equal(nodeKinds.llama.fromConfig!({ rope_theta: 500000, num_attention_heads: 32 }, {}).rope_theta, 500000);
  const a = nodeKinds.llama.fromConfig!({ rope_parameters: { rope_type: 'default', rope_theta: 10000 }, num_attention_heads: 40, num_key_value_heads: null }, {});
  assert.equal(a.rope_theta, 10000);
  assert.equal(a.kv_heads, 40);
});

test('t5: feed_forward_proj "gated-gelu" is a gated gelu_new; "relu" is plain relu', () => {
  const flan = nodeKinds.t5.fromConfig!({ d_model: 2048, num_layers: 24, feed_forward_proj: 'gated-gelu', dense_act_fn: 'gelu_new', tie_word_embeddings: false }, {});
  assert.deepEqual([flan.gated, flan.act, flan.decoder_depth, flan.tie_embeddings], [true, 'gelu_new', 24, false]);
  const t5 = nodeKinds.t5.fromConfig!({ d_model: 512, num_layers: 6, num_decoder_layers: 4 }, {});
  assert.deepEqual([t5.gated, t5.act, t5.decoder_depth, t5.tie_embeddings], [false, 'relu', 4, true]);
});

test('vit: a [h, w] image size that is square collapses to one number; another stays a list for the compiler to refuse', () => {
  assert.equal(nodeKinds.vit.fromConfig!({ image_size: [224, 224], patch_size: 14 }, {}).image_size, 224);
  assert.deepEqual(nodeKinds.vit.fromConfig!({ image_size: [224, 448] }, {}).image_size, [224, 448]);
  assert.equal('image_size' in nodeKinds.vit.fromConfig!({ image_size: null }, {}), false);
});

test('linear, classifier, embed: widths from the weight shape [out, in]', () => {
  const shape = (k: string) => ({ 'p.weight': [2560, 768], 'p.bias': [2560] })[k as 'p.weight'];
  assert.deepEqual(nodeKinds.linear.fromShapes!(shape, 'p'), { out_width: 2560, in_width: 768, bias: true });
  assert.deepEqual(nodeKinds.classifier.fromShapes!(shape, 'p'), { classes: 2560, in_width: 768 });
  assert.deepEqual(nodeKinds.embed.fromShapes!(shape, 'p'), { out_width: 2560, in_width: 768 });
  assert.deepEqual(nodeKinds.linear.fromShapes!(() => undefined, 'p'), {});
});

test('every kind: its schema compiles, its config keys are schema properties', () => {
  for (const [name, kind] of Object.entries(nodeKinds)) {
    assert.equal(kind.kind, name);
    assert.deepEqual(checkAttrs(kindSchemaId(name), {}), []);
    if (kind.fromConfig) for (const key of Object.keys(kind.fromConfig({}, {}))) assert.ok(key in (kind.attrSchema.properties as object), `${name}.${key}`);
  }
});
