// blip graph's pictures (src/draw): what each node and edge says, a layout without overlaps, and
// well-formed SVG / Mermaid / DOT for every shipped graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadProgram } from '../../../src/syntax/load.js';
import { describeModel, layout, toDotGraph, toMermaid, toSvg } from '../../../src/draw/index.js';
import type { IrModel } from '../../../src/ir/types.js';

function model(file: string, name?: string): IrModel {
  const r = loadProgram(file);
  assert.ok(r.program, `${file} does not check`);
  return name ? r.program.models.find((m) => m.name === name)! : r.program.models[0];
}

const shipped = [
  ...readdirSync('graphs').filter((f) => f.endsWith('.blip')).map((f) => join('graphs', f)),
  ...readdirSync('graphs/pinned').filter((f) => f.endsWith('.blip')).map((f) => join('graphs/pinned', f)),
];

test('draw: pinned sizes become widths, depths and edge shapes', () => {
  const g = describeModel(model('graphs/pinned/blip2-opt-2.7b.blip'));
  const v = Object.fromEntries(g.vertices.map((x) => [x.id, x]));
  assert.equal(v.vision.detail, 'width 1408 · depth 39');
  assert.equal(v.vision.note, 'frozen @ vision_model');
  assert.equal(v.qformer.detail, 'width 768 · depth 12 · 32 queries');
  assert.equal(v.qformer.note, 'trainable @ qformer');
  assert.equal(v.projection.detail, '768 → 2560');
  assert.equal(v.llm.detail, 'width 2560 · depth 32');
  assert.equal(v['input:image'].detail, 'pixels (B, 3, 224, 224)');
  const e = (from: string, to: string) => g.edges.find((x) => x.from === from && x.to === to)!;
  assert.equal(e('vision', 'qformer').shape, '(B, 257, 1408)');
  assert.equal(e('qformer', 'projection').shape, '(B, 32, 768)');
  assert.deepEqual([e('projection', 'llm').port, e('projection', 'llm').shape], ['prefix', '(B, 32, 2560)']);
  assert.deepEqual([e('input:prompt', 'llm').port, e('input:prompt', 'llm').shape], ['text', '']);
  assert.ok(g.edges.some((x) => x.from === 'llm' && x.to === 'output:text'));
});

test('draw: unpinned sizes are ?, and a checkpoint fills them in', () => {
  const m = model('graphs/blip2-opt.blip');
  assert.equal(describeModel(m).vertices.find((v) => v.id === 'vision')!.detail, 'width ? · depth ?');
  const resolved = { vision: { width: 128, depth: 3, image_size: 96, patch_size: 12 }, qformer: { width: 128, depth: 2, queries: 16 }, projection: {}, llm: { width: 128, depth: 3 } };
  const g = describeModel(m, resolved);
  // The projection's widths come from its neighbours when neither pinned nor resolved.
  assert.equal(g.vertices.find((v) => v.id === 'projection')!.detail, '128 → 128');
  assert.equal(g.edges.find((e) => e.from === 'vision')!.shape, '(B, 65, 128)');
});

test('draw: retrieval graphs show pooled embeddings and the text-only Q-Former pass', () => {
  const g = describeModel(model('graphs/blip2-itm.blip'));
  assert.match(g.vertices.find((v) => v.id === 'text_only')!.detail, /text only$/);
  assert.equal(g.edges.find((e) => e.from === 'text_only')!.shape, '(B, S, ?)');
  assert.equal(g.edges.filter((e) => e.to === 'output:itc').length, 2);
});

test('draw: layout puts producers above consumers and keeps boxes apart', () => {
  for (const file of shipped) {
    const g = describeModel(model(file));
    const lay = layout({ vertices: g.vertices.map((v) => ({ id: v.id, width: 120, height: 50, fixedLayer: v.role === 'input' ? 'first' : v.role === 'output' ? 'last' : undefined })), edges: g.edges });
    for (const e of g.edges) assert.ok(lay.vertices.get(e.from)!.y < lay.vertices.get(e.to)!.y, `${file}: ${e.from} above ${e.to}`);
    const placed = [...lay.vertices.values()];
    for (const a of placed)
      for (const b of placed) {
        if (a === b || a.layer !== b.layer) continue;
        assert.ok(Math.abs(a.x - b.x) >= (a.width + b.width) / 2, `${file}: ${a.id} and ${b.id} overlap`);
      }
    for (const p of placed) assert.ok(p.x - p.width / 2 >= 0 && p.x + p.width / 2 <= lay.width, `${file}: ${p.id} inside the picture`);
  }
});

test('draw: SVG, Mermaid and DOT of every shipped graph', () => {
  for (const file of shipped) {
    const g = describeModel(model(file));
    const svg = toSvg([g]);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="\d+" height="\d+"/, file);
    assert.ok(svg.trimEnd().endsWith('</svg>'), file);
    assert.equal((svg.match(/<g class="node/g) ?? []).length, g.vertices.filter((v) => v.role === 'node').length, file);
    assert.equal((svg.match(/marker-end=/g) ?? []).length, g.edges.length, file);
    assert.doesNotMatch(svg, /NaN|undefined/, file);
    // Balanced tags (no stray '<' from names or labels).
    const open = (svg.match(/<(g|svg|defs|marker)[\s>]/g) ?? []).length;
    const close = (svg.match(/<\/(g|svg|defs|marker)>/g) ?? []).length;
    assert.equal(open, close, file);
    const mm = toMermaid(g);
    assert.match(mm, /^flowchart TB\n/);
    assert.equal((mm.match(/-->/g) ?? []).length, g.edges.length, file);
    const dot = toDotGraph(g);
    assert.match(dot, /^digraph "/);
    assert.equal((dot.match(/ -> /g) ?? []).length, g.edges.length, file);
  }
});

test('draw: frozen nodes are dashed in SVG and classed in Mermaid', () => {
  const g = describeModel(model('graphs/pinned/instructblip-vicuna-7b.blip'));
  const svg = toSvg([g]);
  assert.match(svg, /<g class="node frozen" id="vision"><rect [^>]*stroke-dasharray/);
  assert.match(svg, /<g class="node" id="qformer"><rect (?![^>]*stroke-dasharray)/);
  // the legend says what a frozen box is drawn with: its kind's border colour, dashed, greyed (not a grey border)
  const stroke = (id: string) => new RegExp(`<g class="node[^"]*" id="${id}"><rect [^>]*stroke="([^"]+)"`).exec(svg)![1];
  assert.equal(stroke('vision'), /<rect [^>]*stroke="([^"]+)"[^>]*\/>\n<text [^>]*>vision encoder/.exec(svg)![1]); // the legend's swatch
  assert.notEqual(stroke('vision'), '#9ca3af');
  assert.match(svg, />dashed border, greyed = frozen; solid border = trainable</);
  assert.doesNotMatch(svg, /grey border/);
  const mm = toMermaid(g);
  assert.match(mm, /class v_vision,v_llm frozen/);
  assert.match(mm, /v_input_3a_prompt -- "instruction" --> v_qformer/);
  assert.match(mm, /v_projection -- "prefix · \(B, 32, 4096\)" --> v_llm/);
});

test('draw: several models are one Mermaid flowchart, a subgraph each, no id declared twice', () => {
  const text = 'import "./blip2-opt.blip"\nmodel a extends blip2_opt { }\nmodel b extends blip2_opt { }\n';
  const r = loadProgram('graphs/two.blip', { text });
  assert.ok(r.program);
  const graphs = r.program.models.map((m) => describeModel(m));
  const mm = toMermaid(graphs);
  assert.equal((mm.match(/^flowchart /gm) ?? []).length, 1, mm);
  assert.match(mm, /^ {2}subgraph m0 \["a"\]$/m);
  assert.match(mm, /^ {2}subgraph m1 \["b"\]$/m);
  const declared = [...mm.matchAll(/^ +(\w+)[[({]/gm)].map((m) => m[1]);
  assert.equal(declared.length, 2 * graphs[0].vertices.length);
  assert.equal(new Set(declared).size, declared.length, 'an id declared twice');
  assert.equal((mm.match(/-->/g) ?? []).length, 2 * graphs[0].edges.length);
  assert.match(mm, /^ {4}m1_v_projection -- "prefix · \(B, Q, \?\)" --> m1_v_llm$/m);
  assert.equal((mm.match(/^ {2}classDef frozen /gm) ?? []).length, 1);
});
