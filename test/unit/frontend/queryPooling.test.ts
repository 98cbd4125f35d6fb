// pool: mean_queries / pool: queries only over a Q-Former's query outputs, and itc()'s text side
// with pool: cls (BLIP2037). The refused graphs are a review's: BLIP's ITM head averaged over the
// fused BERT's tokens, padding included ("a dog" scored 0.6695 alone, 0.7552 beside a longer text),
// and a per-position text embedding failed in onnxruntime with two texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { BLIP2, edit, load } from './harness.js';
import type { Diagnostic } from '../../../src/diagnostics/Diagnostic.js';

const at = (d: Diagnostic) => ({ code: d.code, file: d.loc.file, line: d.loc.line, column: d.loc.column, message: d.message, related: d.related?.map((r) => `${r.loc.file}:${r.loc.line}:${r.loc.column}`) });
const shipped = () => Object.fromEntries(readdirSync('graphs').filter((f) => f.endsWith('.blip')).map((f) => [`graphs/${f}`, readFileSync(`graphs/${f}`, 'utf8')]));
/** `model` checked as review/main.blip beside the shipped graphs/ (imports "../graphs/…"). */
const checkEdit = (model: string) => load({ 'review/main.blip': model, ...shipped() }, 'review/main.blip').diagnostics.map(at);

test("BLIP's ITM head with pool: mean_queries over the fused BERT is refused at the pool", () => {
  assert.deepEqual(checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm { override node itm_head: classifier(fused) @ "itm_head" { pool: mean_queries } }\n'), [
    {
      code: 'BLIP2037', file: 'review/main.blip', line: 2, column: 91, related: undefined,
      message: "classifier 'itm_head' pools mean_queries over 'fused': expected the query outputs of a qformer that reads image features, found bert 'fused', whose positions are not a Q-Former's query outputs; use pool: cls",
    },
  ]);
  // pinned apart from the edge, which the base file wrote: that edge follows as a related place
  assert.deepEqual(checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm {\n  override node itm_head { pool: mean_queries }\n}\n'), [
    {
      code: 'BLIP2037', file: 'review/main.blip', line: 3, column: 34, related: ['graphs/blip-itm.blip:12:29'],
      message: "classifier 'itm_head' pools mean_queries over 'fused': expected the query outputs of a qformer that reads image features, found bert 'fused', whose positions are not a Q-Former's query outputs; use pool: cls",
    },
  ]);
});

test("itc()'s text side with pool: queries is refused at the pool, pointing at the output", () => {
  assert.deepEqual(checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm { override node text_proj: embed(unimodal) @ "text_proj" { pool: queries } }\n'), [
    {
      code: 'BLIP2037', file: 'review/main.blip', line: 2, column: 91, related: ['graphs/blip-itm.blip:17:31'],
      message: "embed 'text_proj' is itc()'s text side (output 'itc'): expected pool: cls, one embedding per text from its first position, found pool: queries",
    },
  ]);
});

test("a pool its kind does not take is BLIP3004's alone, not also itc()'s text side", () => {
  assert.deepEqual(checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm {\n  override node text_proj { pool: clss }\n}\n'), [
    {
      code: 'BLIP3004', file: 'review/main.blip', line: 3, column: 35, related: undefined,
      message: "attribute 'pool' of embed 'text_proj' expects one of cls, queries, found the name clss; did you mean 'cls'?",
    },
  ]);
});

test('pool: queries over the ViT, and over a text-only Q-Former pass, are refused', () => {
  assert.deepEqual(checkEdit('import "../graphs/blip-itm.blip"\nmodel m extends blip_itm { override node image_proj: embed(vision) @ "vision_proj" { pool: queries } }\n').map((d) => [d.code, d.line, d.column, d.message]), [
    ['BLIP2037', 2, 92, "embed 'image_proj' pools queries over 'vision': expected the query outputs of a qformer that reads image features, found vit 'vision', whose positions are not a Q-Former's query outputs; use pool: cls"],
  ]);
  assert.deepEqual(checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm { override node itm_head: classifier(text_only) @ "itm_head" { pool: mean_queries } }\n').filter((d) => d.code === 'BLIP2037').map((d) => [d.line, d.column, d.message]), [
    [2, 96, "classifier 'itm_head' pools mean_queries over 'text_only': expected the query outputs of a qformer that reads image features, found qformer 'text_only' without image features, a text-only pass whose positions are text tokens; use pool: cls"],
  ]);
});

test("BLIP-2's query outputs pooled with cls, written or defaulted, are refused: at the pool, else at the node", () => {
  // the review's graphs: each checked clean, then scored ITC 0.3631 (for 0.6674) and ITM 0.7281 (for 0.8175)
  const cls = (node: string, want: string, qformer: string, found: string, through = '') =>
    `${node} pools cls over the query outputs of qformer '${qformer}'${through}, which reads image features: expected pool: ${want}, over every query (the first position is one query alone, no summary of the image), found ${found}`;
  const defaulted = 'no pool attribute, and pool defaults to cls';
  assert.deepEqual(checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm {\n  override node image_proj: embed(queries) @ "vision_projection"\n}\n'), [
    { code: 'BLIP2037', file: 'review/main.blip', line: 3, column: 17, related: undefined, message: cls("embed 'image_proj'", 'queries', 'queries', defaulted) },
  ]);
  assert.deepEqual(checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm {\n  override node itm_head: classifier(fused) @ "itm_head"\n}\n'), [
    { code: 'BLIP2037', file: 'review/main.blip', line: 3, column: 17, related: undefined, message: cls("classifier 'itm_head'", 'mean_queries', 'fused', defaulted) },
  ]);
  // written apart from the edge the base file wrote: at the pool, the edge related
  assert.deepEqual(checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm {\n  override node itm_head { pool: cls }\n}\n'), [
    { code: 'BLIP2037', file: 'review/main.blip', line: 3, column: 34, related: ['graphs/blip2-itm.blip:12:29'], message: cls("classifier 'itm_head'", 'mean_queries', 'fused', 'pool: cls') },
  ]);
  // through a position-wise projection of the queries
  assert.deepEqual(checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm {\n  node pre: mlp(fused) @ "pre"\n  override node itm_head: classifier(pre) @ "itm_head"\n}\n'), [
    { code: 'BLIP2037', file: 'review/main.blip', line: 4, column: 17, related: undefined, message: cls("classifier 'itm_head'", 'mean_queries', 'fused', defaulted, " (through 'pre')") },
  ]);
  // itc()'s text side over the queries reads the image: BLIP2036's alone
  assert.deepEqual(checkEdit('import "../graphs/blip2-itm.blip"\nmodel m extends blip2_itm {\n  override node text_proj: embed(queries) @ "text_projection"\n}\n').map((d) => d.code), ['BLIP2036']);
});

test('query pooling through a position-wise projection of the query outputs is accepted', () => {
  const src = edit('  output text: generate(llm)', '  node head: classifier(projection) @ "itm_head" { pool: mean_queries }\n  output itm: itm(head)', edit('input prompt: text\n', '', edit(', text: prompt', '', BLIP2)));
  const r = load({ 'main.blip': src });
  assert.deepEqual(r.diagnostics.filter((d) => d.code === 'BLIP2037').map(at), []);
});

test('the shipped graphs (BLIP-2 ITM pools its queries), examples and pinned graphs check without BLIP2037', () => {
  const files = [...readdirSync('graphs').map((f) => `graphs/${f}`), ...readdirSync('graphs/examples').map((f) => `graphs/examples/${f}`), ...readdirSync('graphs/pinned').map((f) => `graphs/pinned/${f}`)];
  for (const f of files.filter((f) => f.endsWith('.blip'))) {
    const r = load({ [f]: readFileSync(f, 'utf8'), ...shipped() }, f);
    assert.deepEqual(r.diagnostics.map(at), [], f);
  }
});
