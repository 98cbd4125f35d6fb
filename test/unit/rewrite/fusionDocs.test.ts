// Every fusion file is registered (a pipeline in src/rewrite/index.ts, or --quantize's) and has its
// row in docs/performance.md's fusion table, whose "emits" cell names the operators it declares;
// every row is a fusion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { FUSIONS, type Fusion } from '../../../src/rewrite/index.js';

const files = readdirSync('src/rewrite')
  .filter((f) => f.endsWith('Fusion.ts'))
  .map((f) => f.slice(0, -'.ts'.length));

/** docs/performance.md's fusion table: the first cell's `XFusion` -> the row's cells. */
function docRows(): Map<string, string[]> {
  const perf = readFileSync('docs/performance.md', 'utf8');
  const section = perf.split('\n## Fused operators')[1]?.split('\n## ')[0];
  assert.ok(section, 'docs/performance.md has no "## Fused operators" section');
  const rows = new Map<string, string[]>();
  for (const line of section.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    const name = /^`(\w+Fusion)`/.exec(cells[1] ?? '')?.[1];
    if (line.startsWith('|') && name) rows.set(name, cells.slice(1, -1));
  }
  return rows;
}

test('each src/rewrite/*Fusion.ts exports its fusion under its file name, and a pipeline (or --quantize) runs it', async () => {
  const exported: Fusion[] = [];
  for (const stem of files) {
    const f = (await import(`../../../src/rewrite/${stem}.js`))[stem] as Fusion | undefined;
    assert.ok(f && typeof f.run === 'function', `src/rewrite/${stem}.ts exports no fusion named ${stem}`);
    assert.ok(FUSIONS.includes(f), `src/rewrite/${stem}.ts: ${f.name} is in no pipeline (PIPELINES in src/rewrite/index.ts)`);
    exported.push(f);
  }
  for (const f of FUSIONS) assert.ok(exported.includes(f), `${f.name} is not in a src/rewrite/*Fusion.ts of its name`);
});

test("docs/performance.md's fusion table has a row for every fusion, naming the operators it emits, and no other rows", async () => {
  const rows = docRows();
  assert.deepEqual([...rows.keys()].sort(), [...files].sort(), 'rows of docs/performance.md "Fused operators" against src/rewrite/*Fusion.ts');
  for (const stem of files) {
    const f = (await import(`../../../src/rewrite/${stem}.js`))[stem] as Fusion;
    const emitsCell = rows.get(stem)![2];
    for (const op of Object.keys(f.emits)) assert.ok(emitsCell.includes(op.split('.').pop()!), `${stem}'s row: its "emits" cell does not name ${op}`);
  }
});
