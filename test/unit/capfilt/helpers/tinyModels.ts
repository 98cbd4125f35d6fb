// The tiny random-weight BLIP fixtures (test/fixtures/blip-caption-a, blip-itm-a) compiled with the
// compiler's API, quietly: real `blip compile` artifacts for the CapFilt tests.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadProgram } from '../../../../src/syntax/load.js';
import { compile } from '../../../../src/lower/compile.js';

export async function compileFixture(graph: string, checkpoint: string, out: string): Promise<string> {
  const loaded = loadProgram(graph);
  if (!loaded.program || loaded.program.models.length !== 1) throw new Error(`${graph} did not load as one model`);
  await compile({ model: loaded.program.models[0], graphFile: graph, graphText: readFileSync(graph, 'utf8'), weights: checkpoint, out });
  return out;
}

/** Compile the tiny captioner and ITM model under `dir` (paths relative to the repository root, the tests' cwd). */
export async function compileTinyModels(dir: string): Promise<{ captioner: string; filter: string }> {
  return {
    captioner: await compileFixture('graphs/blip-caption.blip', 'test/fixtures/blip-caption-a/checkpoint', join(dir, 'caption-tiny')),
    filter: await compileFixture('graphs/blip-itm.blip', 'test/fixtures/blip-itm-a/checkpoint', join(dir, 'itm-tiny')),
  };
}
