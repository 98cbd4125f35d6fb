// The image processor file (processor_config.json's image_processor, or preprocessor_config.json)
// as transformers 5.12.1 reads it: values it would read otherwise than blip-graph did are read its
// way, or refused in one line naming the file and key (review of mutated tiny checkpoints,
// .bench/review/configs: p_resample_*, p_do_*_null, p_center_crop_*, p_size_list16).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../../src/lower/compile.js';
import { loadProgram } from '../../../src/syntax/load.js';
import { CompileError } from '../../../src/lower/CompileError.js';
import type { Manifest } from '../../../src/artifact/manifest.js';
import { FIXTURES, loadModel, tmp } from './harness.js';

const CAPTION = 'graphs/blip-caption.blip';
const root = tmp('processor-file-');
after(() => rmSync(root, { recursive: true, force: true }));
let made = 0;

/** blip-caption-a with `change` applied to processor_config.json's image_processor; the graph's text replaced when given. */
async function compileWith(change: Record<string, unknown>, graphText?: string): Promise<Manifest> {
  const weights = join(root, `checkpoint-${made++}`);
  cpSync(join(FIXTURES, 'blip-caption-a', 'checkpoint'), weights, { recursive: true });
  const file = join(weights, 'processor_config.json');
  const processor = JSON.parse(readFileSync(file, 'utf8'));
  Object.assign(processor.image_processor, change);
  writeFileSync(file, JSON.stringify(processor));
  const model = graphText === undefined ? loadModel(CAPTION).model : loadProgram(CAPTION, { text: graphText }).program!.models[0]!;
  const r = await compile({ model, graphFile: CAPTION, graphText: graphText ?? '', weights, out: `${weights}-out` });
  return r.manifest;
}

async function refused(change: Record<string, unknown>, messages: string[]): Promise<void> {
  await assert.rejects(compileWith(change), (e: unknown) => {
    assert.ok(e instanceof CompileError, String(e));
    assert.deepEqual(e.problems.map((p) => [p.code, p.message]), messages.map((m) => ['BLIP4017', m]));
    assert.ok(e.problems.every((p) => p.loc !== undefined), 'at the model output');
    return true;
  });
}

const CODES = '0 nearest, 1 lanczos, 2 bilinear, 3 bicubic';

test('a resample given as a name (or a string) is refused, not read as the filter it names: transformers resizes with bilinear for it', async () => {
  for (const name of ['nearest', 'lanczos', 'bicubic', 'BICUBIC', '3']) {
    await refused({ resample: name }, [
      `processor_config.json gives ${JSON.stringify(name)} for resample: expected an integer PIL code (${CODES}); transformers resizes with bilinear for any other value (PIL backend) or refuses it (torchvision backend)`,
    ]);
  }
  assert.equal((await compileWith({ resample: 0 })).preprocess.resample, 'nearest', 'the integer code is the filter');
  // the graph's preprocess block takes names, and its resample wins over the file's
  const graph = readFileSync(CAPTION, 'utf8').replace(/^(model \S+ \{)$/m, '$1\n  preprocess { resample: nearest }');
  assert.notEqual(graph, readFileSync(CAPTION, 'utf8'), 'the graph got a preprocess block');
  const m = await compileWith({ resample: 'lanczos' }, graph);
  assert.deepEqual([m.preprocess.resample, m.preprocess.source.resample], ['nearest', 'graph']);
});

test('a step switched by null (do_resize, do_rescale, do_normalize, do_convert_rgb) is off, as transformers reads None', async () => {
  for (const key of ['do_resize', 'do_rescale', 'do_normalize', 'do_convert_rgb'] as const) {
    const m = await compileWith({ [key]: null });
    assert.deepEqual([m.preprocess[key], m.preprocess.source[key]], [false, 'processor_config.json'], key);
  }
});

test('a value written as null for a step that is on is refused, as transformers refuses it; with the step off it is not read', async () => {
  const why = (key: string, step: string) => `processor_config.json gives null for ${key}, which ${step} true needs (transformers refuses it too): write the value, or leave the key out for BlipImageProcessor's default`;
  await refused({ size: null }, [why('size', 'do_resize')]);
  await refused({ resample: null }, [why('resample', 'do_resize')]);
  await refused({ image_mean: null, image_std: null }, [why('image_mean', 'do_normalize'), why('image_std', 'do_normalize')]);
  await refused({ rescale_factor: null }, [why('rescale_factor', 'do_rescale')]);
  const off = await compileWith({ image_mean: null, do_normalize: false, rescale_factor: null, do_rescale: null });
  assert.deepEqual([off.preprocess.do_normalize, off.preprocess.do_rescale], [false, false]);
});

test('do_center_crop true is refused unless the crop changes nothing (crop_size the size images are resized to): blip-graph does not crop', async () => {
  const side = JSON.parse(readFileSync(join(FIXTURES, 'blip-caption-a', 'checkpoint', 'config.json'), 'utf8')).vision_config.image_size as number;
  const half = { height: side / 2, width: side / 2 };
  await refused({ do_center_crop: true, crop_size: half }, [
    `processor_config.json gives do_center_crop true with crop_size ${JSON.stringify(half)}, but blip-graph does not crop (images are resized to ${side} × ${side}): expected do_center_crop false, or a crop_size equal to the resized size (a crop that changes nothing)`,
  ]);
  await refused({ do_center_crop: true }, ['processor_config.json gives do_center_crop true and no crop_size (transformers refuses it too): set do_center_crop false']);
  await refused({ do_center_crop: true, crop_size: side, do_resize: false }, [
    `processor_config.json gives do_center_crop true with crop_size ${side}, but blip-graph does not crop (images are not resized, do_resize is false): expected do_center_crop false, or a crop_size equal to the resized size (a crop that changes nothing)`,
  ]);
  await refused({ do_center_crop: 1, crop_size: side }, ['processor_config.json gives 1 for do_center_crop: expected true or false']);
  for (const crop_size of [side, [side, side], { height: side, width: side }]) {
    assert.equal((await compileWith({ do_center_crop: true, crop_size })).preprocess.image_size, side, JSON.stringify(crop_size));
  }
  for (const do_center_crop of [false, null]) assert.equal((await compileWith({ do_center_crop, crop_size: half })).preprocess.image_size, side);
});

test('a size given as a list is [height, width], as transformers reads it, not left for the default', async () => {
  const side = JSON.parse(readFileSync(join(FIXTURES, 'blip-caption-a', 'checkpoint', 'config.json'), 'utf8')).vision_config.image_size as number;
  const m = await compileWith({ size: [side, side] });
  assert.deepEqual([m.preprocess.image_size, m.preprocess.source.image_size], [side, 'processor_config.json']);
  // one the vision encoder does not take is refused by name, as {height, width} is (it ran at the encoder's size)
  await refused({ size: [side / 2, side / 2] }, [`processor_config.json gives ${side / 2} for the image size, but the vision encoder takes ${side} × ${side} images`]);
  await refused({ size: [side, side + 16] }, [`processor_config.json gives [${side},${side + 16}] for size: expected an integer`]);
  await refused({ size: [side] }, [`processor_config.json gives [${side}] for size: expected an integer`]);
});
