// tiedOrOwn (src/lower/blocks.ts): a stored copy of a tied tensor is the source when its values equal
// the source's as torch.equal says (-0 equals 0, a NaN nothing), told apart anywhere in the tensor
// (past the strided sample it compares first), and the comparison reads one tensor at a time into the
// same memory, so that two (V, E) tables are never held at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LowerContext } from '../../../src/lower/contract.js';
import { GraphBuilder } from '../../../src/lower/GraphBuilder.js';
import { WeightStore } from '../../../src/lower/WeightStore.js';
import { tiedOrOwn } from '../../../src/lower/blocks.js';
import type { Scratch } from '../../../src/weights/Scratch.js';

const [V, E] = [300, 300]; // 90,000 values: more than the 65,536 sampled

/** A context over `tensors`, each produced as the checkpoint's are (into the scratch memory when given); the produced arrays are recorded. */
function contextOver(tensors: Record<string, Float32Array>): { ctx: LowerContext; produced: Float32Array[] } {
  const b = new GraphBuilder('decoder', new WeightStore());
  const produced: Float32Array[] = [];
  const ctx = {
    b,
    has: (name: string) => name in tensors,
    param: (name: string, shape: number[]) =>
      b.weight({
        key: name,
        dims: shape,
        produce: (s?: Scratch) => {
          const out = s ? s.float32(tensors[name]!.length) : new Float32Array(tensors[name]!.length);
          out.set(tensors[name]!);
          produced.push(out);
          return out;
        },
      }),
  } as unknown as LowerContext;
  return { ctx, produced };
}

const table = () => Float32Array.from({ length: V * E }, (_, i) => Math.sin(i) * 0.02);

/** The tensor tiedOrOwn picks for a stored `lm_head` next to `embed`. */
function pick(head: Float32Array, embed: Float32Array): { name: string; produced: Float32Array[] } {
  const { ctx, produced } = contextOver({ lm_head: head, embed });
  return { name: tiedOrOwn(ctx, 'lm_head', 'embed', [V, E]).name, produced };
}

test('an equal copy is the source, read one tensor at a time into the same memory', () => {
  const { name, produced } = pick(table(), table());
  assert.equal(name, 'embed');
  assert.ok(produced.length >= 2);
  for (const p of produced) assert.equal(p.buffer, produced[0]!.buffer, 'every read reuses the memory of the first');
});

test('a copy that differs in one value the sample skips is its own tensor', () => {
  const head = table();
  head[V * E - 1] += 1e-3; // odd: the sample (every 2nd value) leaves it out
  assert.equal(pick(head, table()).name, 'lm_head');
  const first = table();
  first[1] = -first[1]!;
  assert.equal(pick(first, table()).name, 'lm_head');
});

test('-0 equals 0 and a NaN equals nothing, as torch.equal says', () => {
  const [head, embed] = [table(), table()];
  head[0] = 0;
  embed[0] = -0;
  head[12_345] = embed[12_345] = 0;
  embed[12_345] = -0;
  assert.equal(pick(head, embed).name, 'embed');
  const [nanHead, nanEmbed] = [table(), table()];
  nanHead[7] = nanEmbed[7] = NaN; // in the sample
  assert.equal(pick(nanHead, nanEmbed).name, 'lm_head');
  const [offHead, offEmbed] = [table(), table()];
  offHead[V * E - 1] = offEmbed[V * E - 1] = NaN; // off the sample: the digest sees it
  assert.equal(pick(offHead, offEmbed).name, 'lm_head');
});

test('a copy not stored is the source, and nothing is read', () => {
  const { ctx, produced } = contextOver({ embed: table() });
  assert.equal(tiedOrOwn(ctx, 'lm_head', 'embed', [V, E]).name, 'embed');
  assert.equal(produced.length, 0);
});
