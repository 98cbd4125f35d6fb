# References for test/unit/tasks/visualPrefix.test.ts: a language model fed the ViT's outputs as its
# soft prompt (`opt(prefix: vision, …)`, `linear(vision)` into LLaMA, `llama(prefix: vision, …)`),
# which no processor builds inputs for. transformers' own modules composed in the graph's order:
#   vision_model(pixels).last_hidden_state [-> language_projection] ; embed(prompt ids)
#   -> language_model.generate (greedy, 12 new tokens, min 12, no repetition penalty)
# with no prompt: [bos]. Prints one JSON line per case; the test holds the tokens.
#   cd /work/main && ../shared/oracle/py test/oracle/vit_prefix.py
import json, torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, Blip2ForConditionalGeneration, InstructBlipForConditionalGeneration

IMAGE = 'test/fixtures/images/rgb_37x23.png'
PROMPT = 'Question: what is this picture about? Answer:'
CASES = [
    ('blip2-opt-a', Blip2ForConditionalGeneration, False, [PROMPT, 'aaaaaaaa Question: what is this picture about? Answer: a', None]),
    ('blip2-llama-a', Blip2ForConditionalGeneration, True, [PROMPT, None]),
    ('instructblip-vicuna-a', InstructBlipForConditionalGeneration, False, [PROMPT]),
]

torch.set_num_threads(1)
for fixture, cls, project, prompts in CASES:
    d = f'test/fixtures/{fixture}/checkpoint'
    m = cls.from_pretrained(d).eval()
    tok = AutoTokenizer.from_pretrained(d)
    px = AutoImageProcessor.from_pretrained(d, backend='pil')(images=Image.open(IMAGE), return_tensors='pt')['pixel_values']
    for p in prompts:
        ids = tok(p, return_tensors='pt')['input_ids'] if p is not None else torch.tensor([[m.config.text_config.bos_token_id]])
        with torch.no_grad():
            v = m.vision_model(pixel_values=px).last_hidden_state
            if project:
                v = m.language_projection(v)
            e = torch.cat([v, m.language_model.get_input_embeddings()(ids)], 1)
            out = m.language_model.generate(inputs_embeds=e, attention_mask=torch.ones(e.shape[:2], dtype=torch.long), max_new_tokens=12, min_new_tokens=12, do_sample=False, num_beams=1, repetition_penalty=1.0)
        print(json.dumps({'fixture': fixture, 'prompt': p, 'prefix_positions': v.shape[1], 'tokens': out[0].tolist()}))
