// The Q-Former lowering against transformers' Q-Former outputs, from recorded image features
// (debug fixtures of test/oracle/blip2_debug.py): BLIP-2 queries alone (cross-attention every 2nd
// layer), InstructBLIP queries + instruction (cross-attention every layer).
import { test } from 'node:test';
import { join } from 'node:path';
import { GraphBuilder } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import type { FeaturesFlow, Flow } from '../../../src/lower/contract.js';
import { Checkpoint } from '../../../src/weights/checkpoint.js';
import { QFormer } from '../../../src/nodes/qformer.js';
import { Built, DEBUG, assertClose, contextFor, readTensors, resolved, sliceAxis1, toOrt } from './harness.js';

const CASES = ['blip2-t5-tied', 'instructblip-vicuna-theta'];

for (const name of CASES) {
  const dir = join(DEBUG, name);
  test(`qformer: ${name} query outputs match transformers`, async (t) => {
    const ck = Checkpoint.open(dir);
    const exp = readTensors(join(dir, 'expected.safetensors'));
    const attrs = resolved(QFormer, ck, 'qformer_config');
    const store = new WeightStore('float32');
    const b = new GraphBuilder('qformer', store);
    const instruct = exp.has('qformer_input_ids');
    const inputs: Record<string, Flow> = { '': { type: 'features', hidden: b.input('image_embeds', 'float32', ['batch', 'patches', attrs.encoder_width as number]) } };
    if (instruct) inputs.instruction = { type: 'text', ids: b.input('qformer_input_ids', 'int64', ['batch', 'q_text']), mask: b.input('qformer_attention_mask', 'int64', ['batch', 'q_text']) };
    const out = QFormer.lowering!.lower!(contextFor(b, ck, 'qformer', attrs, Object.keys(inputs)), inputs) as FeaturesFlow;
    b.output(out.hidden, 'query_outputs', 'float32');
    const built = await Built.from(store, [b]);
    try {
      const feeds: Record<string, ReturnType<typeof toOrt>> = { image_embeds: toOrt(exp.get('image_embeds')!) };
      if (instruct) {
        feeds.qformer_input_ids = toOrt(exp.get('qformer_input_ids')!);
        feeds.qformer_attention_mask = toOrt(exp.get('qformer_attention_mask')!);
      }
      const res = await built.run('qformer', feeds);
      const diff = assertClose(res.query_outputs.data as Float32Array, sliceAxis1(exp.get('qformer_output')!, 0, attrs.queries as number), 'query outputs');
      t.diagnostic(`max rel diff ${diff.toExponential(2)}`);
    } finally {
      await built.close();
      ck.close();
    }
  });
}
