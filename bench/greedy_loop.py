# Experiment behind docs/performance.md ("decode" bullet): wrap a compiled artifact's decoder.onnx
# (one step with a KV cache) into one greedy-generation model, an ONNX Loop whose body is the step
# graph; the loop carries ids, mask and past.*, and scans out the argmax token. Weights stay in the
# artifact's weights.bin (the initializers keep their external-data references).
#   ../shared/oracle/py bench/greedy_loop.py ART/decoder.onnx ART/greedy-loop.onnx   (BLIP decoders)
import sys, onnx
from onnx import helper as h, TensorProto as T
src, dst = sys.argv[1], sys.argv[2]
m = onnx.load(src, load_external_data=False)
g = m.graph
names_in = [i.name for i in g.input]
past = [n for n in names_in if n.startswith('past.')]
outer = [i for i in g.input if i.name not in ('input_ids', 'attention_mask') and not i.name.startswith('past.')]
# body: inputs iter, cond, carried (input_ids, attention_mask, past...)
def vi(name, elem, shape=None): return h.make_tensor_value_info(name, elem, shape)
body_inputs = [vi('iter', T.INT64, []), vi('cond_in', T.BOOL, []), vi('input_ids', T.INT64, None), vi('attention_mask', T.INT64, None)] + [vi(p, T.FLOAT, None) for p in past]
nodes = list(g.node)
nodes += [
  h.make_node('ArgMax', ['logits'], ['next_tok'], axis=-1, keepdims=1),             # (B, 1)
  h.make_node('Identity', ['cond_in'], ['cond_out']),
  h.make_node('Shape', ['next_tok'], ['tok_shape']),
  h.make_node('ConstantOfShape', ['tok_shape'], ['ones_col'], value=h.make_tensor('one', T.INT64, [1], [1])),
  h.make_node('Concat', ['attention_mask', 'ones_col'], ['mask_next'], axis=1),
  h.make_node('Identity', ['next_tok'], ['ids_next']),
  h.make_node('Identity', ['next_tok'], ['tok_scan']),
]
body_outputs = [vi('cond_out', T.BOOL, []), vi('ids_next', T.INT64, None), vi('mask_next', T.INT64, None)] + [vi(p.replace('past.', 'present.'), T.FLOAT, None) for p in past] + [vi('tok_scan', T.INT64, None)]
body = h.make_graph(nodes, 'step', body_inputs, body_outputs)
# presents in the body are named present.*: the loop maps body outputs to carried positions by order
main_nodes = [h.make_node('Loop', ['max_new_tokens', '', 'input_ids', 'attention_mask'] + past,
                          ['final_ids', 'final_mask'] + ['final_' + p for p in past] + ['tokens'], body=body)]
main_inputs = [vi('max_new_tokens', T.INT64, []), vi('input_ids', T.INT64, ['batch', 'seq']), vi('attention_mask', T.INT64, ['batch', 'seq'])] + [gi for gi in g.input if gi.name.startswith('past.')] + outer
main = h.make_graph(main_nodes, 'greedy', main_inputs, [vi('tokens', T.INT64, None)], initializer=list(g.initializer))
out = h.make_model(main, opset_imports=m.opset_import, ir_version=m.ir_version)
onnx.save(out, dst)
print('wrote', dst, len(nodes), 'body nodes')
