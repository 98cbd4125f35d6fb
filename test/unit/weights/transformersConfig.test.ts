import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONFIG_CLASS_DEFAULTS, configClassOf, effectiveConfig } from '../../../src/weights/transformersConfig.js';
import type { JsonObject } from '../../../src/weights/checkpoint.js';

// Written by test/oracle/config_defaults.py from transformers' own config classes.
const oracle = JSON.parse(readFileSync('test/fixtures/config-defaults.json', 'utf8')) as {
  classes: Record<string, Record<string, unknown>>;
  sparse: Array<{ config: JsonObject; read: Record<string, Record<string, unknown>> }>;
};

test("every default in the table is the one transformers' config class has", () => {
  for (const [cls, defaults] of Object.entries(CONFIG_CLASS_DEFAULTS)) {
    assert.ok(oracle.classes[cls], `${cls} is not in the oracle's list`);
    for (const [key, value] of Object.entries(defaults)) {
      assert.ok(key in oracle.classes[cls], `${cls} has no key ${key}`);
      assert.equal(value, oracle.classes[cls][key], `${cls}.${key}`);
    }
  }
});

test('a sparse config.json reads as transformers reads it: defaults by class, OPT for a text_config without model_type, encoder_hidden_size forced', () => {
  for (const { config, read } of oracle.sparse) {
    const { config: eff, filled } = effectiveConfig(config);
    for (const [section, values] of Object.entries(read)) {
      const ours = (section === '' ? eff : eff[section]) as JsonObject;
      const cls = configClassOf(config, section);
      assert.ok(cls, `${config.model_type} ${section}: no class`);
      // every key the table lists, and every key the file gave, reads as transformers reads it
      const keys = new Set([...Object.keys(CONFIG_CLASS_DEFAULTS[cls]), 'encoder_hidden_size', ...(section === 'text_config' && cls !== 'BlipTextConfig' ? ['model_type'] : [])].filter((k) => k in values && values[k] !== null));
      for (const k of keys) assert.equal(ours[k], values[k], `${config.model_type} ${section}.${k} (${cls})`);
      for (const k of filled.get(section)?.keys ?? []) assert.equal(((section === '' ? config : config[section] ?? {}) as JsonObject)[k], undefined, `${section}.${k} was given`);
    }
  }
  // the forced key is forced also where the file gives another value
  const given = oracle.sparse.find((s) => (s.config.qformer_config as JsonObject)?.encoder_hidden_size === 16)!;
  const blip2 = effectiveConfig(given.config).config;
  assert.equal((blip2.qformer_config as JsonObject).encoder_hidden_size, 48);
});

test('keys written as null, sections that are not objects and unknown families are left as they are', () => {
  const { config, filled } = effectiveConfig({ model_type: 'blip-2', vision_config: { layer_norm_eps: null }, qformer_config: 3 });
  assert.equal((config.vision_config as JsonObject).layer_norm_eps, null);
  assert.equal(config.qformer_config, 3);
  assert.deepEqual([...filled.get('vision_config')!.keys].includes('layer_norm_eps'), false);
  const other = { model_type: 'clip', vision_config: {} };
  assert.deepEqual(effectiveConfig(other).config, other);
  assert.equal(effectiveConfig(other).filled.size, 0);
});

test("a section of another model (model_type not one the BLIP families' classes write) takes no family class's defaults", () => {
  // Blip2Config builds Blip2VisionConfig(**vision_config) whatever its model_type (transformers 5.12),
  // but a "siglip_vision_model" section is no model Blip2VisionModel builds: the node kind's defaults apply
  const siglip = { model_type: 'blip-2', vision_config: { model_type: 'siglip_vision_model', hidden_size: 32 }, qformer_config: { model_type: 'bert' } };
  assert.equal(configClassOf(siglip, 'vision_config'), undefined);
  assert.equal(configClassOf(siglip, 'qformer_config'), undefined);
  const { config, filled } = effectiveConfig(siglip);
  assert.deepEqual(config.vision_config, siglip.vision_config);
  assert.equal(filled.has('vision_config'), false);
  // the Q-Former still reads the vision width, as Blip2Config forces it
  assert.equal((config.qformer_config as JsonObject).encoder_hidden_size, 32);
  assert.equal(configClassOf({ model_type: 'blip', text_config: { model_type: 'bert' } }, 'text_config'), undefined);
  // the families' own model_types (any family's: Blip2Config reads them with its class), none, or '' read as the family's class
  for (const model_type of ['blip_vision_model', 'blip_2_vision_model', 'instructblip_vision_model', undefined, '']) {
    assert.equal(configClassOf({ model_type: 'blip-2', vision_config: { model_type } }, 'vision_config'), 'Blip2VisionConfig', String(model_type));
    assert.equal(configClassOf({ model_type: 'blip', vision_config: { model_type } }, 'vision_config'), 'BlipVisionConfig', String(model_type));
  }
  assert.equal(configClassOf({ model_type: 'instructblip', qformer_config: { model_type: 'blip_2_qformer' } }, 'qformer_config'), 'InstructBlipQFormerConfig');
  assert.equal(configClassOf({ model_type: 'blip', text_config: { model_type: 'blip_text_model' } }, 'text_config'), 'BlipTextConfig');
});
