# Reference for test/unit/tasks/generatingNode.test.ts: BLIP's caption decoder (blip-caption-a's
# text_decoder) cross-attending to BLIP-2's query outputs (blip2-opt-a's vision_model, query_tokens,
# qformer), which no transformers class pairs. Its own modules composed in the graph's order, the
# decoder driven as BlipForConditionalGeneration.generate drives it: [CLS] replaced by
# text_config.bos_token_id ([DEC]), the trailing [SEP] dropped, eos = sep_token_id, pad = pad_token_id;
# no prompt: [DEC] alone. Greedy, 12 new tokens (min 12); prints the tokens and the log-softmax of
# the first 4 tokens' logits.
#   cd /work/main && ../shared/oracle/py test/oracle/bert_decoder_on_queries.py
import json, torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, Blip2ForConditionalGeneration, BlipForConditionalGeneration

torch.set_num_threads(1)
b2 = Blip2ForConditionalGeneration.from_pretrained('test/fixtures/blip2-opt-a/checkpoint').eval()
blip = 'test/fixtures/blip-caption-a/checkpoint'
dec = BlipForConditionalGeneration.from_pretrained(blip).text_decoder.eval()
tok = AutoTokenizer.from_pretrained(blip)
px = AutoImageProcessor.from_pretrained('test/fixtures/blip2-opt-a/checkpoint', backend='pil')(images=Image.open('test/fixtures/images/rgb_37x23.png'), return_tensors='pt')['pixel_values']
tc = dec.config
for p in [None, 'a dog sitting on']:
    with torch.no_grad():
        img = b2.vision_model(pixel_values=px).last_hidden_state
        q = b2.qformer(query_embeds=b2.query_tokens.expand(1, -1, -1), encoder_hidden_states=img, encoder_attention_mask=torch.ones(img.shape[:2], dtype=torch.long)).last_hidden_state
        if p is None:
            ids, mask = torch.tensor([[tc.bos_token_id, tc.sep_token_id]]), None
        else:
            t = tok(p, return_tensors='pt')
            ids, mask = t['input_ids'].clone(), t['attention_mask'][:, :-1]
        ids[:, 0] = tc.bos_token_id
        out = dec.generate(input_ids=ids[:, :-1], attention_mask=mask, eos_token_id=tc.sep_token_id, pad_token_id=tc.pad_token_id,
                           encoder_hidden_states=q, encoder_attention_mask=torch.ones(q.shape[:2], dtype=torch.long),
                           max_new_tokens=12, min_new_tokens=12, do_sample=False, num_beams=1, output_logits=True, return_dict_in_generate=True)
    new = out.sequences[0, ids.shape[1] - 1:]
    print(json.dumps({'prompt': p, 'tokens': new.tolist(), 'logprobs': [round(torch.log_softmax(l[0], -1)[t].item(), 6) for l, t in zip(out.logits[:4], new)]}))
