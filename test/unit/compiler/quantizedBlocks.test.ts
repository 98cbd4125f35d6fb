// blip compile --quantize: the compiled graphs' MatMulNBits nodes use the documented blocks
// (docs/performance.md: "asymmetric blocks (32 for int4, 128 for int8)"), read from the ONNX files
// written, not from the BLOCK_SIZE the rewrite tests take their blocks from.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../../src/index.js';
import { decodeModel } from '../../../src/lower/emitOnnx.js';
import { FIXTURES, tmp } from './harness.js';

const root = tmp('blip-quantized-blocks-');
after(() => rmSync(root, { recursive: true, force: true }));

test('--quantize int8 / int4: every MatMulNBits has bits 8 / 4 and block_size 128 / 32, as documented, and its packed weight those blocks', async () => {
  const docs = readFileSync('docs/performance.md', 'utf8');
  assert.match(docs, /asymmetric blocks \(32 for int4, 128 for int8\)/);
  for (const [quantize, bits, blockSize] of [['int8', 8, 128], ['int4', 4, 32]] as const) {
    const out = join(root, quantize);
    await compile('graphs/blip-caption.blip', { weights: join(FIXTURES, 'blip-caption-a', 'checkpoint'), out, target: 'cpu', quantize });
    let nodes = 0;
    for (const file of ['encode.onnx', 'decoder.onnx']) {
      const g = decodeModel(readFileSync(join(out, file))).graph!;
      for (const n of g.node!.filter((x) => x.opType === 'MatMulNBits')) {
        const attr = (name: string) => Number(n.attribute!.find((a) => a.name === name)?.i);
        assert.deepEqual([attr('bits'), attr('block_size')], [bits, blockSize], `${quantize} ${file} ${n.name}`);
        const packed = g.initializer!.find((i) => i.name === n.input![1])!;
        assert.deepEqual(packed.dims!.map(Number), [attr('N'), Math.ceil(attr('K') / blockSize), (blockSize * bits) / 8], `${quantize} ${file} ${n.name}: packed ${n.input![1]}`);
        nodes++;
      }
    }
    assert.ok(nodes >= 10, `${quantize}: ${nodes} MatMulNBits nodes`);
  }
});
