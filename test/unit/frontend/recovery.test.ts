// Error recovery and follow-on errors: one mistake gives one diagnostic, parsing resumes at the
// next model member, and the checks that can still run do (review findings 11-17).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { loadProgram } from '../../../src/syntax/load.js';
import { BLIP2, check, edit } from './harness.js';
import { parse } from '../../../src/syntax/parse.js';

const codes = (src: string, more: Record<string, string> = {}) => check(src, more).map((d) => `${d.code}@${d.line}:${d.column}`);

test('a mistake after a node head resumes at the next member, not at a brace inside the node (no BLIP1012)', () => {
  for (const [from, to, at] of [
    ['frozen @ "vision_model"', 'frozn @ "vision_model" { config: "vision_config" }', 'BLIP1010@4:27'],
    ['frozen @ "vision_model"', '"vision_model" { config: "vision_config" }', 'BLIP1010@4:27'],
    ['node vision: vit', 'node vision vit', 'BLIP1011@4:15'],
    ['frozen @ "vision_model"', '@ "vision_model" frozen { config: "vision_config" }', 'BLIP1010@4:44'],
  ])
    assert.deepEqual(codes(edit(from, to)), [at], to);
});

test('a misspelt keyword after a node head suggests it', () => {
  const [d] = check(edit('frozen @', 'frozn @'));
  assert.match(d!.message, /found 'frozn'; did you mean 'frozen'\?$/);
});

test('after a syntax error in one member, a mistake in another member of the model is still reported', () => {
  const src = edit('qformer(vision) @', 'qformr(vision) @', edit('frozen @ "vision_model"', 'frozn @ "vision_model"'));
  assert.deepEqual(codes(src), ['BLIP1010@4:27', 'BLIP2010@5:17']);
});

test('a reserved word as an attribute key is one error that says so', () => {
  const ds = check(edit('output text: generate(llm)', 'output text: generate(llm)\n  generation { input: 10 }'));
  assert.deepEqual(ds.map((d) => d.code), ['BLIP1010']);
  assert.match(ds[0]!.message, /expected an attribute name, found 'input' \('input' is a reserved word/);
});

test("'override input' is one error that says inputs are not overridden", () => {
  const ds = check('model d extends m {\n  override input prompt: text\n}\n', {}).filter((d) => d.code !== 'BLIP2003');
  assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1010@2:3']);
  assert.match(ds[0]!.message, /an input is not overridden/);
});

test("'override' before a misspelt 'node' or 'output' is one error at that word, and the member still parses", () => {
  const base = { 'base.blip': BLIP2 };
  for (const [member, at, hint] of [
    ['override nod projection { width: 7 }', 'BLIP1010@3:12', /found 'nod'; did you mean 'node'\?$/],
    ['override outptu text: generate(llm)', 'BLIP1010@3:12', /found 'outptu'; did you mean 'output'\?$/],
    ['override zzz projection { width: 7 }', 'BLIP1010@3:12', /expected 'node' or 'output' after 'override', found 'zzz'$/],
  ] as const) {
    // the model's other members are still read: no BLIP2029 (no outputs), no second syntax error
    const ds = check(`import "./base.blip"\nmodel d extends m {\n  ${member}\n  output other: generate(llm)\n}\n`, base).filter((d) => d.code.startsWith('BLIP1'));
    assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), [at], member);
    assert.match(ds[0]!.message, hint);
  }
  const plain = check(`model m2 {\n  input image: image\n  override nod v: vit(image) @ "vision_model"\n  output caption: generate(v)\n}\n`, {});
  assert.ok(!plain.some((d) => d.code === 'BLIP2029'), plain.map((d) => d.code).join(' '));
});

test("'override' with 'node' or 'output' left out is one error at the name, which is still the name", () => {
  const base = { 'base.blip': BLIP2 };
  for (const [member, at, name] of [
    ['override vision: vit(image) @ "vision_model"', 'BLIP1010@3:12', 'vision'],
    ['override projection { width: 7 }', 'BLIP1010@3:12', 'projection'],
    ['override text: generate(llm)', 'BLIP1010@3:12', 'text'],
    ['override nod: vit(image)', 'BLIP1010@3:12', 'nod'], // a node named 'nod', not a misspelt 'node'
  ] as const) {
    // nothing after: no error at the name or the ':' (the name is not taken for the keyword), the model's outputs are read
    const ds = check(`import "./base.blip"\nmodel d extends m {\n  ${member}\n  output other: generate(llm)\n}\n`, base).filter((d) => d.code.startsWith('BLIP1') || d.code === 'BLIP2029');
    assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), [at], member);
    assert.equal(ds[0]!.message, `expected 'node' or 'output' after 'override', found '${name}'`);
  }
  // read as the member meant: an overriding node named 'vision', an overriding output named 'text'
  const { ast } = parse(`model d extends m {\n  override vision: vit(image) @ "v"\n  override text: itm(llm)\n}\n`, 'main.blip');
  assert.deepEqual(
    ast.decls.flatMap((d) => (d.type === 'model' ? d.members : [])).map((m) => [m.type, 'override' in m && m.override, 'name' in m && m.name?.text]),
    [
      ['node', true, 'vision'],
      ['output', true, 'text'],
    ],
  );
});

test('a missing or doubled comma in a list is one error each, and the rest of the block is read', () => {
  for (const [list, errs] of [
    ['[0.5, 0.5 red]', ["expected ',' or ']', found 'red'"]],
    ['[red green, blue]', ["expected ',' or ']', found 'green'"]],
    ['[0.5,, 0.5, 0.5]', ["expected a value or ']', found ','"]],
    ['[[1, 2] [3, 4]]', ["expected ',' or ']', found '['"]],
    ['[0.5 0.5 0.5]', ["expected ',' or ']', found '0.5'", "expected ',' or ']', found '0.5'"]],
  ] as const) {
    const ds = check(edit('output text: generate(llm)', `output text: generate(llm)\n  preprocess { mean: ${list}\n    std: [0.5, 0.5, 0.5] }`));
    assert.deepEqual(ds.filter((d) => d.code.startsWith('BLIP1')).map((d) => d.message), errs, list);
  }
  // a list left open before the next key still closes there, with one error
  const open = check(edit('output text: generate(llm)', 'output text: generate(llm)\n  preprocess { mean: [0.5, 0.5, 0.5\n    std: [0.5, 0.5, 0.5] }'));
  assert.deepEqual(open.map((d) => d.message), ["expected ',' or ']', found 'std'"]);
});

test("'=' for ':', '#' comments, single quotes and names starting with a digit: one error each, with a hint", () => {
  const cases: Array<[string, string, RegExp]> = [
    ['output text: generate(llm)', 'output text = generate(llm)', /expected ':'/],
    ['opt(prefix: projection', 'opt(prefix= projection', /expected ':'/],
    ['  input prompt: text', '  # the prompt\n  input prompt: text', /expected a comment to start with '\/\/'/],
    ['@ "qformer"', "@ 'qformer'", /expected a string in double quotes \("qformer"\)/],
    ['node vision: vit(image) frozen', 'node 1vision: vit(image) frozen', /expected a name to start with a letter or _/],
    ['output text: generate(llm)', 'output text: generate(llm);', /expected no separator: a declaration ends where the next begins/],
  ];
  for (const [from, to, hint] of cases) {
    const ds = check(edit(from, to));
    assert.equal(ds.length, 1, `${to}: ${JSON.stringify(ds)}`);
    assert.match(ds[0]!.message, hint);
  }
});

test('an unterminated string is one error at its opening quote', () => {
  const ds = check(edit('@ "vision_model"', '@ "vision_model { config: "vision_config" }'));
  assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1002@4:36']);
  assert.match(ds[0]!.message, /^unterminated string/);
});

test('a lexical error the lexer read past does not stop the checks (a malformed number and an unknown kind)', () => {
  const src = edit('qformer(vision) @ "qformer"', 'qformr(vision) @ "qformer"', edit('@ "vision_model"', '@ "vision_model" { image_size: 384px }'));
  assert.deepEqual(codes(src), ['BLIP1006@4:65', 'BLIP2010@5:17']);
});

test('a missing import is one error: models extending what it holds are not reported again', () => {
  const src = 'import "./missing.blip"\nmodel x extends blip2_opt { generation { max_new_tokens: 4 } }\nmodel y extends blip2_opt { }\n';
  assert.deepEqual(codes(src), ['BLIP2001@1:8']);
});

test('an import of a file that is not .blip is one error at the import, the file unread', () => {
  const ds = check('import "/etc/passwd"\n' + BLIP2);
  assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP2001@1:8']);
  assert.match(ds[0]!.message, /cannot import '\/etc\/passwd': expected a \.blip file/);
});

test("a missing file or import that names a shipped graph says where blip-graph's is; not for another read error, nor when that file is the one given", () => {
  const dir = mkdtempSync(join(tmpdir(), 'recovery-'));
  const ships = (graph: string) => `found no such file; blip-graph ships a graph of that name: ${resolve('graphs', graph)}`; // (run from the package's root)
  const found = (file: string, opts?: Parameters<typeof loadProgram>[1]) => loadProgram(file, opts).diagnostics.map((d) => `${d.code} ${d.message.replace(/.*found /, 'found ')}`);
  try {
    // compile('graphs/blip-caption.blip', …) from a project, and an import of a missing copy
    assert.deepEqual(found(join(dir, 'graphs', 'blip-caption.blip')), [`BLIP2001 ${ships('blip-caption.blip')}`]);
    writeFileSync(join(dir, 'mine.blip'), 'import "./graphs/blip2-opt.blip"\nmodel mine extends blip2_opt { }\n');
    assert.deepEqual(found(join(dir, 'mine.blip')), [`BLIP2001 ${ships('blip2-opt.blip')}`]);
    // a folder where the file should be: not missing, so no hint
    mkdirSync(join(dir, 'graphs', 'blip-vqa.blip'), { recursive: true });
    assert.deepEqual(found(join(dir, 'graphs', 'blip-vqa.blip')), ['BLIP2001 found it is a directory']);
    // the shipped file itself, unreadable as missing: pointing at it again would not help
    const enoent = () => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    };
    assert.deepEqual(found(resolve('graphs', 'blip2-opt.blip'), { readFile: enoent }), ['BLIP2001 found no such file']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file imported twice, once through a symbolic link, is one file (no duplicate model)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'recovery-'));
  try {
    mkdirSync(join(dir, 'g'));
    writeFileSync(join(dir, 'g', 'base.blip'), BLIP2);
    symlinkSync(join(dir, 'g'), join(dir, 'link'));
    writeFileSync(join(dir, 'main.blip'), 'import "./link/base.blip"\nimport "./g/base.blip"\nmodel x extends m { generation { max_new_tokens: 3 } }\n');
    assert.deepEqual(loadProgram(join(dir, 'main.blip')).diagnostics.map((d) => d.code), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an import of a named pipe or a device (a link to /dev/zero) is one error at the import, never a wait without end', { timeout: 20_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'recovery-'));
  try {
    execFileSync('mkfifo', [join(dir, 'pipe.blip')]);
    symlinkSync('/dev/zero', join(dir, 'zero.blip'));
    writeFileSync(join(dir, 'main.blip'), 'import "./pipe.blip"\nimport "./zero.blip"\n' + BLIP2);
    const ds = loadProgram(join(dir, 'main.blip')).diagnostics.map((d) => `${d.code}@${d.loc.line}:${d.loc.column} ${d.message.replace(/.*found /, '')}`);
    assert.deepEqual(ds, ['BLIP2001@1:8 a named pipe', 'BLIP2001@2:8 a device']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('thousands of broken members neither overflow the stack nor stop the first errors being reported', () => {
  const src = 'model m {\n  input image: image\n' + '  node v: vit(image) frozn { a: { b } }\n'.repeat(20000) + '}\n';
  const ds = check(src);
  assert.ok(ds.length > 100 && ds.length < 1000, String(ds.length));
  assert.equal(`${ds[0]!.code}@${ds[0]!.line}:${ds[0]!.column}`, 'BLIP1010@3:22');
});

test('a reserved word as an attribute value is one error that says to quote it', () => {
  const ds = check(edit('output text: generate(llm)', 'output text: generate(llm)\n  generation { prompt: model }'));
  assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1010@9:24']);
  assert.match(ds[0]!.message, /'model' is a reserved word: write it as a string, "model"/);
});

test("a model header whose 'extends' lost its base gives one error, not BLIP2006 at every override", () => {
  const src = 'import "./base.blip"\n\nmodel derived extends {\n  override node vision { width: 1408 }\n  override node llm { width: 2560 }\n  override output text: generate(llm)\n}\n';
  assert.deepEqual(codes(src, { 'base.blip': BLIP2 }), ['BLIP1010@3:23']);
  // (with a base the header names, an override of nothing inherited is still reported)
  assert.deepEqual(codes(src.replace('extends {', 'extends m {\n  frozn').replace('vision {', 'visio {'), { 'base.blip': BLIP2 }), ['BLIP1010@4:3', 'BLIP2006@5:17']);
});

test('a reserved word as a node kind is one error that says so', () => {
  for (const kw of ['output', 'generation', 'model', 'input']) {
    const ds = check(edit('node llm: opt(', `node llm: ${kw}(`));
    assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1010@7:13'], kw);
    assert.match(ds[0]!.message, new RegExp(`expected a node kind, found '${kw}' \\('${kw}' is a reserved word`));
  }
});

test("a member keyword starting the line after an attribute's ':' begins the next member: one error", () => {
  const open = edit('frozen @ "vision_model"', 'frozen @ "vision_model" { config: "vision_config" :');
  assert.deepEqual(codes(open), ['BLIP1010@4:77']);
  const missing = edit('frozen @ "vision_model"', 'frozen @ "vision_model" { config:');
  const ds = check(missing);
  assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1011@5:3']);
  assert.doesNotMatch(ds[0]!.message, /write it as a string/);
  // (on the same line it is still a reserved word given as a value)
  assert.match(check(edit('frozen @ "vision_model"', 'frozen @ "vision_model" { config: node }'))[0]!.message, /write it as a string, "node"/);
});

test('a reserved word in a list is one error and the model goes on after the list', () => {
  const block = (list: string) => edit('output text: generate(llm)', `output text: generate(llm)\n  preprocess {\n    mean: ${list}\n    std: [0.26, 0.26, 0.27]\n  }\n  generation { max_new_tokns: 20 }`);
  // a stray word after a value: left out, so the list keeps its 3 items (no BLIP3007), and the
  // generation block after it is still checked (its misspelt key reported), not BLIP1012
  for (const kw of ['input', 'node', 'generation']) {
    const ds = check(block(`[0.48 ${kw}, 0.45, 0.40]`));
    assert.deepEqual(ds.map((d) => `${d.code}@${d.line}`), ['BLIP1010@10', 'BLIP3001@13'], kw);
    assert.match(ds[0]!.message, new RegExp(`expected ',' or '\\]', found '${kw}'$`));
  }
  // as an item of its own: a value that is a reserved word
  const ds = check(block('[input, 0.45, 0.40]'));
  assert.equal(`${ds[0]!.code}@${ds[0]!.line}:${ds[0]!.column}`, 'BLIP1010@10:12');
  assert.match(ds[0]!.message, /write it as a string, "input"/);
  assert.ok(!ds.some((d) => d.code === 'BLIP1012'));
});

test("'=' before a node's attribute block and a '#' glued to a key: one error each, the rest read", () => {
  const refine = 'model d extends m {\n  override node qformer ={\n    width: 768\n  }\n  override node llm { widht: 2560 }\n}\n';
  const ds = check(BLIP2 + '\n' + refine);
  assert.deepEqual(ds.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1001@12:25', 'BLIP3001@15:23']);
  assert.match(ds[0]!.message, /unexpected character '=' \(U\+003D\): expected '\{' to follow the name directly/);
  const hash = check(edit('output text: generate(llm)', 'output text: generate(llm)\n  generation {\n    max_new_tokens#: 20\n    num_beams: 5\n  }'));
  assert.deepEqual(hash.map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1001@10:19']);
  assert.match(hash[0]!.message, /unexpected character '#' \(U\+0023\): expected ':' to follow the name directly/);
  // (the rest of the line is read: a mistake in it is reported)
  assert.deepEqual(check(edit('output text: generate(llm)', 'output text: generate(llm)\n  generation { max_new_tokens#: 20, num_beems: 5 }')).map((d) => `${d.code}@${d.line}:${d.column}`), ['BLIP1001@9:30', 'BLIP3001@9:37']);
});
