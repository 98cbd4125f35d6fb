// Each node kind's `doc` sentence is what docs/language.md says of it first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { nodeKinds } from '../../../src/nodes/index.js';

test("docs/language.md's section on each node kind starts with the kind's doc", () => {
  const lang = readFileSync('docs/language.md', 'utf8');
  for (const kind of Object.values(nodeKinds)) {
    const section = lang.split(`### \`${kind.kind}\``)[1]?.split('\n### ')[0];
    assert.ok(section, `no section for ${kind.kind}`);
    assert.equal(section.trim().split('\n\n')[0], kind.doc, kind.kind);
  }
});
