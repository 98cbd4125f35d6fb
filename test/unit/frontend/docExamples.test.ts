// Examples and suggestions the docs stand behind (review finding 19).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { check, edit } from './harness.js';

test("docs/language.md's Lexical structure example is a whole model that checks clean", () => {
  const lang = readFileSync('docs/language.md', 'utf8');
  const example = /## Lexical structure\n\n```blip\n([^]*?)```/.exec(lang)![1]!;
  assert.deepEqual(check(example), []);
});

test("an unknown attribute of a kind that reads no config.json section is not offered 'config' (BLIP3006 would refuse it)", () => {
  const src = 'model m {\n  input image: image\n  node v: vit(image) @ "vision_model"\n  node h: classifier(v) @ "itm_head" { confg: "x" }\n  output o: itm(h)\n}\n';
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
