// The package's type declarations (dist/**/*.d.ts, what `types` in package.json points at) as the
// strictest consumer reads them: tsc --init's settings with exactOptionalPropertyTypes and
// skipLibCheck false, so every declaration the entry reaches is checked, not only the ones used.
// A class whose optional member admits undefined failed there (TS2420) while the repository's own
// build, with skipLibCheck and without exactOptionalPropertyTypes, was clean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
})();

test("the package's declarations type-check in a strict consumer (exactOptionalPropertyTypes, skipLibCheck false)", (t) => {
  if (!existsSync(join(ROOT, 'dist', 'src', 'index.d.ts'))) return t.skip('no dist/src/index.d.ts: build first (npm test does)');
  const dir = mkdtempSync(join(tmpdir(), 'blip-declarations-'));
  try {
    // a project that installed the package: node_modules/blip-graph is the repository (its
    // dependencies resolve from the repository's node_modules), @types/node beside it
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'blip-graph'), 'dir');
    symlinkSync(join(ROOT, 'node_modules', '@types'), join(dir, 'node_modules', '@types'), 'dir');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          target: 'esnext',
          types: ['node'],
          noEmit: true,
          strict: true,
          exactOptionalPropertyTypes: true,
          noUncheckedIndexedAccess: true,
          verbatimModuleSyntax: true,
          isolatedModules: true,
          skipLibCheck: false,
        },
        files: ['consumer.ts'],
      }),
    );
    // every export, so that every declaration the entry reaches is loaded (and, skipLibCheck false, checked)
    writeFileSync(join(dir, 'consumer.ts'), "import * as blip from 'blip-graph';\nexport { blip };\n");
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { cwd: dir, encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
