// Options as every command reads them: --name=VALUE as --name VALUE, a missing value or a repeated
// option refused, a misspelt option named with the nearest known one in the same words; `blip help`
// with a command it does not know; `blip fmt --write` through a symbolic link; one Mermaid diagram
// for a file of two models.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCliBatch } from '../cliHarness.js';

const dir = mkdtempSync(join(tmpdir(), 'blip-cmdline-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const CAPTION = 'graphs/blip-caption.blip';
const ckpt = 'test/fixtures/blip-caption-a/checkpoint';
const two = join(dir, 'two.blip');
writeFileSync(two, `import "${resolve('graphs/blip2-opt.blip')}"\nmodel a extends blip2_opt { }\nmodel b extends blip2_opt { }\n`);
const real = join(dir, 'real.blip');
const messy = 'model m{input image:image\nnode v:vit(image)@"v"\noutput o:generate(v)}';
writeFileSync(real, messy);
const link = join(dir, 'link.blip');
symlinkSync(real, link);

const BATCH = {
  graphInline: ['graph', `--weights=${ckpt}`, '--model=blip_caption', '--format=json'],
  graphSpaced: ['graph', '--weights', ckpt, '--model', 'blip_caption', '--format', 'json'],
  graphNoModel: ['graph', CAPTION, '--model'],
  graphNoWeights: ['graph', CAPTION, '--weights'],
  graphTwice: ['graph', CAPTION, '--model', 'x', '--model', 'blip_caption'],
  graphFormatTwice: ['graph', CAPTION, '--format=svg', '--format', 'dot'],
  graphTypo: ['graph', CAPTION, '--wieghts', ckpt],
  compileTypo: ['compile', '--wieghts', ckpt],
  checkTypo: ['check', '--jsn', CAPTION],
  fmtTypo: ['fmt', '--wrte', CAPTION],
  versionTypo: ['version', '--verbos'],
  versionX: ['version', '--x'],
  runTypo: ['run', 'out', '--imge', 'a.jpg'],
  serveTypo: ['serve', 'x', '--prot', '8080'],
  helpUnknown: ['help', 'nonexistent'],
  helpTypo: ['help', 'comple'],
  helpExtra: ['help', 'compile', 'extra'],
  helpCompile: ['help', 'compile'],
  helpHelp: ['help', 'help'],
  help: ['help'],
  fmtLink: ['fmt', '--write', link],
  mermaidTwo: ['graph', two, '--format', 'mermaid'],
};
const names = Object.keys(BATCH) as Array<keyof typeof BATCH>;
const R = Object.fromEntries(runCliBatch(names.map((n) => BATCH[n])).map((r, i) => [names[i], r]));
const usage = (name: keyof typeof BATCH, command: string, line: string) => {
  const r = R[name];
  assert.equal(r.code, 2, `${name}: ${r.err}`);
  assert.equal(r.out, '', name);
  assert.equal(r.err, `blip ${command}: ${line}\nRun 'blip ${command} --help' for usage.\n`, name);
};

test('blip graph takes --weights=DIR and --model=NAME as blip compile does', () => {
  assert.equal(R.graphInline.code, 0, R.graphInline.err);
  assert.equal(R.graphInline.out, R.graphSpaced.out);
  assert.equal(JSON.parse(R.graphInline.out).name, 'blip_caption');
});

test('blip graph refuses a trailing option without its value, and an option given twice, as blip compile does', () => {
  usage('graphNoModel', 'graph', '--model expects a value');
  usage('graphNoWeights', 'graph', '--weights expects a value');
  usage('graphTwice', 'graph', '--model is given twice');
  usage('graphFormatTwice', 'graph', '--format is given twice');
});

test("every command names a misspelt option's nearest one the same way", () => {
  usage('graphTypo', 'graph', "unknown option '--wieghts'; did you mean '--weights'?");
  usage('compileTypo', 'compile', "unknown option '--wieghts'; did you mean '--weights'?");
  usage('checkTypo', 'check', "unknown option '--jsn'; did you mean '--json'?");
  usage('fmtTypo', 'fmt', "unknown option '--wrte'; did you mean '--write'?");
  usage('versionTypo', 'version', "unknown option '--verbos'; did you mean '--verbose'?");
  usage('versionX', 'version', "unknown option '--x'");
  usage('runTypo', 'run', "unknown option '--imge'; did you mean '--image'?");
  usage('serveTypo', 'serve', "unknown option '--prot'; did you mean '--port'?");
});

test("blip help with a command it does not know is that command's error (exit 2), not the main help", () => {
  assert.deepEqual(R.helpUnknown, { code: 2, out: '', err: "blip: unknown command 'nonexistent'. Run 'blip --help' for the list.\n" });
  assert.deepEqual(R.helpTypo, { code: 2, out: '', err: "blip: unknown command 'comple'. Did you mean 'compile'? Run 'blip --help' for the list.\n" });
  assert.deepEqual(R.helpExtra, { code: 2, out: '', err: "blip: 'blip help' takes one command, found 2 (compile extra). Run 'blip --help' for the list.\n" });
  assert.equal(R.helpCompile.code, 0);
  assert.match(R.helpCompile.out, /^Usage: blip compile /);
});

test('blip help help is the main help (exit 0), as blip help is', () => {
  assert.equal(R.help.code, 0, R.help.err);
  assert.match(R.help.out, /Run 'blip <command> --help' for a command's options/);
  assert.deepEqual(R.helpHelp, R.help);
});

test('blip fmt --write through a symbolic link formats the file it points to and keeps the link', () => {
  assert.deepEqual(R.fmtLink, { code: 0, out: '', err: '' });
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link was replaced by a file');
  assert.notEqual(readFileSync(real, 'utf8'), messy, 'the target is not formatted');
  assert.match(readFileSync(real, 'utf8'), /^model m \{\n/);
});

test('blip graph --format mermaid of a file with two models is one diagram', () => {
  const r = R.mermaidTwo;
  assert.equal(r.code, 0, r.err);
  assert.equal((r.out.match(/^flowchart /gm) ?? []).length, 1, r.out);
  assert.equal((r.out.match(/^ {2}subgraph /gm) ?? []).length, 2, r.out);
  const declared = [...r.out.matchAll(/^ +(\w+)[[({]/gm)].map((m) => m[1]);
  assert.equal(new Set(declared).size, declared.length, 'an id declared twice');
});
