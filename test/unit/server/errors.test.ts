// What the server answers for the runtime's refusals: the client's mistakes are 400s in OpenAI's
// shape (the openai client retries 5xx, three times by default), the server's own failures 500s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toApiError } from '../../../runtime/server/errors.js';
import { BlipRuntimeError, GenerationConfigError } from '../../../runtime/errors.js';
import { temperature } from '../../../runtime/generation/processors.js';

test('a text past the model positions (BLIP5032) is 400 context_length_exceeded; a bad model step stays 500', () => {
  const long = toApiError(new BlipRuntimeError('BLIP5032', 'the instruction is 77 tokens for the Q-Former, which has 40 positions; shorten it'));
  assert.deepEqual([long.status, long.code, long.type], [400, 'context_length_exceeded', 'invalid_request_error']);
  const step = toApiError(new BlipRuntimeError('BLIP5031', 'decoder.onnx returned logits of 10 columns'));
  assert.equal(step.status, 500);
});

test('a temperature so small the scores overflow is a generation-settings error (400), not a model failure', () => {
  const scores = Float32Array.from([3, -1, 0.5]);
  assert.throws(() => temperature(1e-300)([[1]], scores, 3), (e: unknown) => {
    assert.ok(e instanceof GenerationConfigError);
    assert.match((e as Error).message, /^temperature 1e-300 is too small/);
    assert.equal(toApiError(e).status, 400);
    return true;
  });
  // a small but workable one divides as before; a very negative score may become -inf (probability 0)
  const ok = Float32Array.from([3, -3e38, 0.5]);
  temperature(0.5)([[1]], ok, 3);
  assert.deepEqual(Array.from(ok), [6, -Infinity, 1]);
});

test("the library's option names in a message reaching a client are the request's fields", () => {
  const e = toApiError(new BlipRuntimeError('BLIP5032', 'the prompt takes 3 positions and up to 900 new tokens were asked for; the decoder has 512 positions: shorten the prompt or lower maxNewTokens'));
  assert.match(e.message, /lower max_tokens$/);
  assert.equal(toApiError(new GenerationConfigError('topP must be a number from 0 to 1, found 2')).message, 'top_p must be a number from 0 to 1, found 2');
  // a word that only contains a name is left alone
  assert.equal(toApiError(new GenerationConfigError('maxNewTokensX is odd')).message, 'maxNewTokensX is odd');
});
