// `blip fmt`: canonical layout, comments kept, idempotent; files with syntax errors refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSource } from '../../../src/syntax/print.js';
import { BLIP2, check } from './harness.js';

const fmt = (text: string): string => {
  const r = formatSource(text, 'x.blip');
  assert.equal(r.diagnostics.length, 0);
  return r.text!;
};

test('messy layout becomes canonical', () => {
  const messy = `import   "./base.blip"
model   m    extends base{
input image :image
    node   v:vit( image )frozen@"vision_model"{config:"vision_config",width:768
depth:12}
output  o :generate( v )
generation{max_new_tokens:20,}}`;
  assert.equal(
    fmt(messy),
    `import "./base.blip"

model m extends base {
  input image: image
  node v: vit(image) frozen @ "vision_model" { config: "vision_config", width: 768, depth: 12 }
  output o: generate(v)
  generation { max_new_tokens: 20 }
}
`,
  );
});

test('comments stay: leading above their declaration, trailing at the end of its line', () => {
  const src = `// header

// about m
model m { // trailing on the header line
  input image: image   // the picture

  /* block
     comment */
  node v: vit(image) @ "v" {
    width: 768 // pinned
    // before depth
    depth: 12
    // at the end of the block
  }
  // at the end of the model
}
// at the end of the file
`;
  const out = fmt(src);
  assert.equal(
    out,
    `// header

// about m
model m {
  // trailing on the header line
  input image: image // the picture

  /* block
     comment */
  node v: vit(image) @ "v" {
    width: 768 // pinned
    // before depth
    depth: 12
    // at the end of the block
  }
  // at the end of the model
}
// at the end of the file
`,
  );
  assert.equal(fmt(out), out);
});

test('a long attribute block breaks into one attribute per line; a short one stays inline', () => {
  const long = `model m {\n  node v: vit(image) @ "vision_model" { image_size: 224, patch_size: 14, width: 1408, depth: 39, heads: 16, mlp_width: 6144 }\n}\n`;
  assert.equal(
    fmt(long),
    `model m {\n  node v: vit(image) @ "vision_model" {\n    image_size: 224\n    patch_size: 14\n    width: 1408\n    depth: 39\n    heads: 16\n    mlp_width: 6144\n  }\n}\n`,
  );
  const short = 'model m {\n  node v: vit(image) @ "vision_model" {\n    width: 768\n  }\n}\n';
  assert.equal(fmt(short), 'model m {\n  node v: vit(image) @ "vision_model" { width: 768 }\n}\n');
});

test('blank lines: runs collapse to one, none added inside a model, one between top-level models', () => {
  const src = 'model a {\n  input x: image\n\n\n\n  input y: text\n}\nmodel b {}\n\n\n';
  assert.equal(fmt(src), 'model a {\n  input x: image\n\n  input y: text\n}\n\nmodel b {}\n');
});

test('values are kept as written: number spelling, string escapes, names, lists', () => {
  const src = 'model m { preprocess { mean: [0.5,.5e0 , 5E-1] } }';
  // `.5e0` is not a number: the file does not parse, so it is not formatted.
  assert.ok(formatSource(src, 'x.blip').text === undefined);
  const ok = 'model m { generation { prompt: "a \\"q\\"\\n", temperature: 1e-1, top_k: 0 } preprocess { resample: bicubic, mean: [0.5,0.5 ,5E-1,] } }';
  assert.equal(
    fmt(ok),
    'model m {\n  generation { prompt: "a \\"q\\"\\n", temperature: 1e-1, top_k: 0 }\n  preprocess { resample: bicubic, mean: [0.5, 0.5, 5E-1] }\n}\n',
  );
});

test("the generation block's whole-sequence lengths and early_stopping never come back as written, and the result checks clean", () => {
  const messy = BLIP2.replace('  output text: generate(llm)\n', '  output text: generate(llm)\ngeneration{max_length:40,min_length:31,\nearly_stopping:never,num_beams:3,}\n');
  const out = fmt(messy);
  assert.match(out, /\n  generation \{ max_length: 40, min_length: 31, early_stopping: never, num_beams: 3 \}\n/);
  assert.equal(fmt(out), out);
  assert.deepEqual(check(out), []);
  // a string is kept a string
  const quoted = fmt(messy.replace('early_stopping:never', 'early_stopping:"never"'));
  assert.match(quoted, /early_stopping: "never",/);
  assert.deepEqual(check(quoted), []);
});

test('override forms, empty blocks and CRLF input', () => {
  const src = 'model d extends b {\r\n  override node q: qformer(vision, instruction: prompt) @ "qformer"\r\n  override node v {}\r\n  override output o: generate(q)\r\n}\r\n';
  assert.equal(
    fmt(src),
    'model d extends b {\n  override node q: qformer(vision, instruction: prompt) @ "qformer"\n  override node v {}\n  override output o: generate(q)\n}\n',
  );
});

test('a file with syntax errors is not formatted', () => {
  const r = formatSource('model m { node v: vit(image @ "v" }', 'x.blip');
  assert.equal(r.text, undefined);
  assert.deepEqual(r.diagnostics.map((d) => d.code), ['BLIP1010']);
});

test('an empty file formats to an empty file', () => {
  assert.equal(formatSource('', 'x.blip').text, '');
  assert.equal(formatSource('// only a comment\n', 'x.blip').text, '// only a comment\n');
});

test('a block comment after a declaration stays at the end of its line, as a // comment does; the result checks clean', () => {
  const src = BLIP2.replace('  input image: image\n', '  input image: image /* the photo */\n').replace(
    '  input prompt: text\n',
    '  input prompt: text // the question\n',
  );
  const out = fmt(src);
  assert.match(out, /\n  input image: image \/\* the photo \*\/\n  input prompt: text \/\/ the question\n  node vision:/);
  assert.equal(fmt(out), out);
  assert.deepEqual(check(out), []);
  // several on the line, one over several lines, one after a block: all stay where they end their line
  const more = `model m {
  input image: image /* a */ /* b */ // c
  input prompt: text /* over
     two lines */
  node v: vit(image) @ "v" { width: 768 } /* after the block */
  node w: vit(image) @ "w" { width: 768 /* in the block */ }
}
`;
  const moreOut = fmt(more);
  assert.equal(
    moreOut,
    `model m {
  input image: image /* a */ /* b */ // c
  input prompt: text /* over
     two lines */
  node v: vit(image) @ "v" { width: 768 } /* after the block */
  node w: vit(image) @ "w" {
    width: 768 /* in the block */
  }
}
`,
  );
  assert.equal(fmt(moreOut), moreOut);
});

test('a comment on a line two declarations share belongs to the one it is next to', () => {
  // before the second declaration: above it; after it: at the end of its line (not the first's)
  const src = 'model m {\n  input image: image /* the question */ input prompt: text\n  input extra: text input more: text // the last\n}\n';
  const out = fmt(src);
  assert.equal(out, 'model m {\n  input image: image\n  /* the question */\n  input prompt: text\n  input extra: text\n  input more: text // the last\n}\n');
  assert.equal(fmt(out), out);
});

test('an attribute block of exactly 120 columns stays on its line; 121 columns break it', () => {
  const line = (config: string): string => `  node decoder: bert(prompt, cross: vision) @ "text_decoder" { config: "${config}", causal: true }`;
  const at120 = line('text_config' + 'x'.repeat(20));
  assert.equal(at120.length, 120);
  const src = BLIP2.replace('  output text: generate(llm)\n', `${at120}\n  output text: generate(llm)\n`);
  assert.ok(fmt(src).includes(`\n${at120}\n`));
  const at121 = line('text_config' + 'x'.repeat(21));
  assert.equal(at121.length, 121);
  const broken = fmt(src.replace(at120, at121));
  assert.ok(!broken.includes(at121));
  assert.match(broken, /\n  node decoder: bert\(prompt, cross: vision\) @ "text_decoder" \{\n    config: "text_configx{21}"\n    causal: true\n  \}\n/);
});
