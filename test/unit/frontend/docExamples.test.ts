// Examples and suggestions the docs stand behind (review finding 19).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadProgram } from '../../../src/syntax/load.js';
import { blockSchemaId, schemaKeys } from '../../../src/ir/validate.js';
import { check, edit } from './harness.js';

test("docs/language.md's Lexical structure example is a whole model that checks clean", () => {
  const lang = readFileSync('docs/language.md', 'utf8');
  const example = /## Lexical structure\n\n```blip\n([^]*?)```/.exec(lang)![1]!;
  assert.deepEqual(check(example), []);
});

test("docs/language.md's import of a shipped graph from an installed package checks, from the project's root and from a subfolder", () => {
  const lang = readFileSync('docs/language.md', 'utf8');
  const example = /## Files and imports\n[^]*?```blip\n[^]*?```[^]*?```blip\n([^]*?)```/.exec(lang)![1]!;
  assert.match(example, /^import "\.\/node_modules\/blip-graph\/graphs\/blip-caption\.blip"$/m);
  // a project as npm leaves it: node_modules/blip-graph is the package (here, this repository)
  const project = mkdtempSync(join(tmpdir(), 'blip-installed-'));
  try {
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(resolve('.'), join(project, 'node_modules', 'blip-graph'), 'dir');
    writeFileSync(join(project, 'my-caption.blip'), example);
    mkdirSync(join(project, 'graphs'));
    writeFileSync(join(project, 'graphs', 'my-caption.blip'), example.replace('"./node_modules/', '"../node_modules/'));
    for (const file of ['my-caption.blip', join('graphs', 'my-caption.blip')]) {
      const r = loadProgram(join(project, file));
      assert.deepEqual(r.diagnostics.map((d) => `${d.code} ${d.message}`), [], file);
      const [model] = r.program!.models;
      assert.deepEqual([model!.name, model!.extends, model!.nodes.map((n) => n.name), model!.generation.max_new_tokens], ['my_caption', 'blip_caption', ['vision', 'decoder'], 40]);
    }
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});

test("an unknown attribute of a kind that reads no config.json section is not offered 'config' (BLIP3006 would refuse it)", () => {
  const src = 'model m {\n  input image: image\n  input text: text\n  node v: vit(image) @ "vision_model"\n  node f: bert(text, cross: v) @ "text_encoder"\n  node h: classifier(f) @ "itm_head" { confg: "x" }\n  output o: itm(h)\n}\n';
  const ds = check(src);
  assert.deepEqual(ds.map((d) => d.code), ['BLIP3001']);
  assert.doesNotMatch(ds[0]!.message, /\bconfig\b/);
  // a kind that has a section still offers it
  const vit = check(src.replace('node v: vit(image) @ "vision_model"', 'node v: vit(image) @ "vision_model" { confg: "vision_config" }').replace(' { confg: "x" }', ''));
  assert.match(vit[0]!.message, /did you mean 'config'\?/);
});

test("docs/diagnostics.md's fix for BLIP3006 is not the text its example refuses, and the node it suggests checks clean", () => {
  const entry = readFileSync('docs/diagnostics.md', 'utf8').split('### BLIP3006')[1]!.split('\n### ')[0]!;
  const refused = /\{ (config: "[^"]+") \}/.exec(/```\n([^]*?)```/.exec(entry)![1]!)![1]!; // the frame's attribute
  const fix = /^Fix: (.*)$/m.exec(entry)![1]!;
  assert.ok(!fix.includes(refused), fix);
  const suggested = /`(vit\(image\) @ "vision_model" \{ config: "[^"]+" \})`/.exec(fix)![1]!;
  assert.deepEqual(check(edit('vit(image) frozen @ "vision_model"', suggested)), []);
});

test("docs/language.md's generation block table has a row for every key the block's schema takes, and no other", () => {
  const lang = readFileSync('docs/language.md', 'utf8');
  const table = /## Generation defaults\n[^]*?\n(\| key \|[^]*?)\n\n/.exec(lang)![1]!;
  const keys = table
    .split('\n')
    .slice(2)
    .flatMap((row) => [...row.split('|')[1]!.matchAll(/`(\w+)`/g)].map((m) => m[1]!));
  assert.deepEqual(keys.sort(), schemaKeys(blockSchemaId('generation')).sort());
});
