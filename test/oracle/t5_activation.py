# Reference for test/unit/blip2/t5Activation.test.ts: blip2-t5-a with its text_config's feed-forward
# keys changed, as T5Config reads them (feed_forward_proj derives dense_act_fn / is_gated_act, then
# the file's own dense_act_fn / is_gated_act replace them). Greedy, 4 new tokens on rgb_37x23.png and
# "Question: what is this? Answer:"; prints the activation the model was built with, the tokens and the
# log-softmax of the first 4 tokens' logits.
#   cd /work/main && ../shared/oracle/py test/oracle/t5_activation.py
import json, os, shutil, tempfile, torch
from PIL import Image
from transformers import AutoProcessor, Blip2ForConditionalGeneration

torch.set_num_threads(1)
src = 'test/fixtures/blip2-t5-a/checkpoint'
image = Image.open('test/fixtures/images/rgb_37x23.png')
# (not is_gated_act false: the checkpoint's wi_0 / wi_1 do not fit the plain feed-forward, which
# transformers then initialises at random)
for name, change in [('dense_act_fn relu', {'dense_act_fn': 'relu'}), ('feed_forward_proj gated-silu', {'feed_forward_proj': 'gated-silu'})]:
    d = tempfile.mkdtemp()
    for f in os.listdir(src):
        (shutil.copytree if os.path.isdir(os.path.join(src, f)) else shutil.copy)(os.path.join(src, f), os.path.join(d, f))
    config = json.load(open(os.path.join(d, 'config.json')))
    config['text_config'].update(change)
    json.dump(config, open(os.path.join(d, 'config.json'), 'w'))
    m = Blip2ForConditionalGeneration.from_pretrained(d).eval()
    enc = AutoProcessor.from_pretrained(d, backend='pil')(images=image, text='Question: what is this? Answer:', return_tensors='pt')
    with torch.no_grad():
        out = m.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False, num_beams=1, output_logits=True, return_dict_in_generate=True)
    new = out.sequences[0, 1:]
    tc = m.config.text_config
    print(json.dumps({'case': name, 'dense_act_fn': tc.dense_act_fn, 'is_gated_act': tc.is_gated_act, 'tokens': new.tolist(),
                      'logprobs': [round(torch.log_softmax(l[0], -1)[t].item(), 6) for l, t in zip(out.logits, new)]}))
    shutil.rmtree(d)
