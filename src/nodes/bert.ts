// bert: a BERT-style text transformer (BLIP's text encoder and text decoder). With a `cross:` input
// every layer cross-attends to those features; with `causal: true` it is a decoder with an LM head.
// text (B, S) -> embeddings -> `depth` post-norm layers [self-attn, cross-attn?, MLP] -> (B, S, width)
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, oneOf, pick } from './schema.js';
import type { FeaturesFlow, KV, LowerContext, TextFlow } from '../lower/contract.js';
import type { Value } from '../lower/GraphBuilder.js';
import { activation, attend, causalBias, mergeHeads, paddingBias, splitHeads, type QueryGroups } from '../lower/transformer.js';
import { dense, layerNorm, onesMask, position, tiedOrOwn } from '../lower/blocks.js';

export const Bert: NodeKind = {
  kind: 'bert',
  doc: 'A BERT-style text encoder or (with `causal: true`) decoder, optionally cross-attending to image features.',
  ports: [
    { name: '', role: 'text', accepts: ['text'], required: false, doc: 'the text input (a decoder without it generates from its start token)' },
    { name: 'cross', role: 'cross', accepts: ['features'], required: false, doc: 'features every layer cross-attends to (image, or the question encoder in VQA)' },
  ],
  output: 'features',
  attrSchema: attrSchema('bert', {
    width: int('hidden size (config: hidden_size)'),
    depth: int('number of layers (config: num_hidden_layers)', 1, 1024),
    heads: int('attention heads (config: num_attention_heads)', 1, 1024),
    mlp_width: int('MLP hidden size (config: intermediate_size)'),
    vocab_size: int('vocabulary size'),
    max_positions: int('learned positions (config: max_position_embeddings)'),
    layer_norm_eps: eps('layer-norm epsilon'),
    encoder_width: int('width of the `cross:` features (config: encoder_hidden_size)'),
    causal: bool('causal self-attention and an LM head: a text decoder'),
    act: oneOf('MLP activation (config: hidden_act)', ACTIVATIONS),
    tie_embeddings: bool("a decoder's LM head is the word embeddings and cls.predictions.bias unless the checkpoint stores a head that differs from them (an equal one is stored once) (config: tie_word_embeddings, at the top level or in text_config); when false the head must be stored, as transformers reports it missing"),
  }),
  defaultConfig: 'text_config',
  fromConfig(section, root) {
    // `is_decoder` is not read: BLIP's encoder and decoder share one text_config; the file says causal.
    const attrs = pick(section, {
      width: 'hidden_size',
      depth: 'num_hidden_layers',
      heads: 'num_attention_heads',
      mlp_width: 'intermediate_size',
      vocab_size: 'vocab_size',
      max_positions: 'max_position_embeddings',
      layer_norm_eps: 'layer_norm_eps',
      encoder_width: 'encoder_hidden_size',
      act: 'hidden_act',
    });
    // BlipForConditionalGeneration / ForQuestionAnswering tie the head while either config says so (their
    // tied-weights map is the union of the top level's and the text decoder's; each defaults to true)
    const says = [section.tie_word_embeddings, root.tie_word_embeddings];
    if (says.includes(true)) attrs.tie_embeddings = true;
    else if (says.every((v) => v === false)) attrs.tie_embeddings = false;
    return attrs;
  },
  outputWidth: (a) => n(a, 'width'),
  inputWidth: (port, a) => (port === 'cross' ? n(a, 'encoder_width') : undefined),
  divides: [{ part: 'heads', whole: 'width' }],
  generates: { when: 'causal' },
  promptFormat: 'blip',
  learnedPositions: true,
  maxPositionEmbeddings: (a) => n(a, 'max_positions'),
};

// ---- lowering (src/lower/contract.ts) ----
// BlipTextModel as the encoder (prefix `text_encoder`: embeddings.*, encoder.layer.{i}.*) and
// BlipTextLMHeadModel as the decoder (`causal: true`, prefix `text_decoder`: the same body under
// `bert.`, the LM head under `cls.predictions`). Post-norm layers:
//   x = LN(x + dense(selfattn(x)));  x = LN(x + dense(crossattn(x, cross)));  x = LN(x + fc2(act(fc1(x))))
interface Dims {
  W: number;
  heads: number;
  D: number;
  encW: number;
  mlpW: number;
  eps: number;
  act: string;
}

function dims(ctx: LowerContext): Dims {
  const [W, heads] = [ctx.int('width'), ctx.int('heads')];
  const encW = ctx.connected('cross') ? ctx.int('encoder_width') : W;
  return { W, heads, D: W / heads, encW, mlpW: ctx.int('mlp_width'), eps: ctx.num('layer_norm_eps'), act: ctx.str('act') };
}

/** Where the transformer body's tensors are: the decoder nests it under `bert.`. */
const body = (ctx: LowerContext) => (ctx.bool('causal') ? 'bert.' : '');

// The decoder's tied pairs (BlipTextLMHeadModel._tied_weights_keys): its LM head's weight and bias are
// the word embeddings and cls.predictions.bias unless the checkpoint stores them apart (tiedOrOwn).
const HEAD_WEIGHT = 'cls.predictions.decoder.weight';
const WORDS = 'bert.embeddings.word_embeddings.weight';
const HEAD_BIAS = 'cls.predictions.decoder.bias';
const BIAS = 'cls.predictions.bias';

/**
 * The tensor a tied pair shares: `tied`, or, in a checkpoint that stores only the other side `own`,
 * that one (from_pretrained's tie_weights then ties the missing side to the present one).
 */
const tiedSource = (ctx: LowerContext, own: string, tied: string) => (!ctx.has(tied) && ctx.has(own) ? own : tied);

/** Word + learned position embeddings, then LayerNorm. ids (B, S), positions (S) or (B, S) → (B, S, W). */
function embed(ctx: LowerContext, d: Dims, ids: Value, positions: Value): Value {
  const { b } = ctx;
  const p = `${body(ctx)}embeddings`;
  const table = ctx.bool('causal') && ctx.bool('tie_embeddings') ? tiedSource(ctx, HEAD_WEIGHT, WORDS) : `${p}.word_embeddings.weight`;
  return b.scope('embeddings', () => {
    const words = b.gather(ctx.param(table, [ctx.int('vocab_size'), d.W]), ids, 0, 'words'); // (B, S, W)
    const pos = b.gather(ctx.param(`${p}.position_embeddings.weight`, [ctx.int('max_positions'), d.W]), positions, 0, 'positions'); // (S, W)
    return layerNorm(ctx, b.add(words, pos, 'sum'), `${p}.LayerNorm`, d.W, d.eps, 'LayerNorm');
  });
}

/** Cross-attention keys and values of layer i from the `cross:` features (B, L, encW) → (B, N, L, D). */
function crossKV(ctx: LowerContext, d: Dims, i: number, hidden: Value): KV {
  const { b } = ctx;
  const p = `${body(ctx)}encoder.layer.${i}.crossattention.self`;
  return b.scope(`encoder.layer.${i}.crossattention`, () => ({
    key: splitHeads(b, dense(ctx, hidden, `${p}.key`, d.encW, d.W, 'key'), d.heads, d.D, 'key_heads'),
    value: splitHeads(b, dense(ctx, hidden, `${p}.value`, d.encW, d.W, 'value'), d.heads, d.D, 'value_heads'),
  }));
}

/** attention.output / crossattention.output / output: LN(residual + dense(x)). */
function addNorm(ctx: LowerContext, d: Dims, x: Value, residual: Value, p: string, inW: number, role: string): Value {
  return layerNorm(ctx, ctx.b.add(dense(ctx, x, `${p}.dense`, inW, d.W, `${role}_dense`), residual, `${role}_residual`), `${p}.LayerNorm`, d.W, d.eps, role);
}

interface LayerIO {
  selfBias?: Value;
  past?: KV;
  cross?: KV;
  crossBias?: Value;
  /** decoder.onnx: cross K/V one row per encoded row, the step's rows in groups over them. */
  crossGroups?: QueryGroups;
}

/** One layer; with `past`, the self-attention keys/values are appended to it and returned as `present`. */
function layer(ctx: LowerContext, d: Dims, i: number, x: Value, io: LayerIO): { out: Value; present?: KV } {
  const { b } = ctx;
  const p = `${body(ctx)}encoder.layer.${i}`;
  return b.scope(`encoder.layer.${i}`, () => {
    const heads = (t: Value, role: string) => splitHeads(b, t, d.heads, d.D, role); // (B, N, S, D)
    const self = b.scope('attention', () => {
      const q = heads(dense(ctx, x, `${p}.attention.self.query`, d.W, d.W, 'query'), 'query_heads');
      let k = heads(dense(ctx, x, `${p}.attention.self.key`, d.W, d.W, 'key'), 'key_heads');
      let v = heads(dense(ctx, x, `${p}.attention.self.value`, d.W, d.W, 'value'), 'value_heads');
      if (io.past) {
        k = b.concat([io.past.key, k], 2, 'present_key'); // (B, N, P + S, D)
        v = b.concat([io.past.value, v], 2, 'present_value');
      }
      const o = attend(b, q, k, v, { divide: Math.sqrt(d.D), bias: io.selfBias }); // scores / √D, as BlipTextSelfAttention
      return { out: addNorm(ctx, d, mergeHeads(b, o, d.W, 'context'), x, `${p}.attention.output`, d.W, 'output'), present: io.past ? { key: k, value: v } : undefined };
    });
    let h = self.out;
    if (io.cross) {
      const c = io.cross;
      h = b.scope('crossattention', () => {
        const g = io.crossGroups;
        const q = dense(ctx, self.out, `${p}.crossattention.self.query`, d.W, d.W, 'query');
        const qh = heads(g ? g.group(q, d.W) : q, 'query_heads');
        const o = mergeHeads(b, attend(b, qh, c.key, c.value, { divide: Math.sqrt(d.D), bias: io.crossBias }), d.W, 'context');
        return addNorm(ctx, d, g ? g.ungroup(o, self.out, d.W) : o, self.out, `${p}.crossattention.output`, d.W, 'output');
      });
    }
    const ff = b.scope('ffn', () => activation(b, dense(ctx, h, `${p}.intermediate.dense`, d.W, d.mlpW, 'intermediate'), d.act));
    return { out: b.scope('output', () => addNorm(ctx, d, ff, h, `${p}.output`, d.mlpW, 'output')), present: self.present };
  });
}

Bert.lowering = {
  defaults: { causal: false, act: 'gelu', tie_embeddings: true },
  ignored: (attrs, connected) => [
    /(.*\.)?position_ids/, // a buffer that older checkpoints saved
    ...(attrs.tie_embeddings === false ? [/cls\.predictions\.bias/] : []), // untied, the head's own bias serves
    /(bert\.)?pooler\..*/, // BLIP's heads read the [CLS] hidden state, never the pooler
    ...(connected('cross') ? [] : [/(bert\.)?encoder\.layer\.\d+\.crossattention\..*/]),
  ],

  // The text encoder (VQA question, ITM, ITC): bidirectional self-attention over the padded text.
  lower(ctx, inputs) {
    const { b } = ctx;
    const d = dims(ctx);
    const text = inputs[''] as TextFlow;
    const cross = inputs.cross as FeaturesFlow | undefined;
    const S = b.dim(text.ids, 1, 'seq_len');
    let x = embed(ctx, d, text.ids, b.range(b.int64([0], [], 'first_position'), S, 'position_ids'));
    const selfBias = paddingBias(b, text.mask, 'self_bias');
    const crossBias = cross?.mask ? paddingBias(b, cross.mask, 'cross_bias') : undefined;
    for (let i = 0; i < ctx.int('depth'); i++) {
      x = layer(ctx, d, i, x, { selfBias, cross: cross && crossKV(ctx, d, i, cross.hidden), crossBias }).out;
    }
    return { type: 'features', hidden: x, mask: text.mask }; // (B, S, W)
  },

  decoder: {
    facts: (ctx) => {
      const d = dims(ctx);
      return { layers: ctx.int('depth'), kvHeads: d.heads, headDim: d.D, hidden: d.W, vocab: ctx.int('vocab_size'), positions: 'input' };
    },

    encode(ctx, inputs) {
      const cross = inputs.cross as FeaturesFlow | undefined;
      if (!cross) return {};
      const d = dims(ctx);
      return {
        cross: Array.from({ length: ctx.int('depth') }, (_, i) => crossKV(ctx, d, i, cross.hidden)),
        // Why all ones: BLIP's generate() passes an all-ones encoder mask for the image and, in VQA,
        // for the question too, padding included (BlipForQuestionAnswering.generate).
        crossMask: onesMask(ctx.b, cross.hidden, 'cross_attention_mask'),
      };
    },

    step(ctx, io) {
      const { b } = ctx;
      const d = dims(ctx);
      // Positions as transformers 5.12's generate() gives them (BlipTextLMHeadModel takes
      // position_ids): cumsum(mask) - 1 over the prompt, 0 at its padding, then the last column's + 1
      // at each step, so a right-padded prompt's new tokens count on from its padding's 0. The
      // runtime numbers them (runtime/generation/onnx.ts); (B, S) here.
      let x = embed(ctx, d, io.ids, io.positions!);
      const selfBias = causalBias(b, io.mask, x, 'self_bias');
      const crossBias = io.crossMask && paddingBias(b, io.crossMask, 'cross_bias');
      const present: KV[] = [];
      for (let i = 0; i < ctx.int('depth'); i++) {
        const r = layer(ctx, d, i, x, { selfBias, past: io.past[i], cross: io.cross?.[i], crossBias, crossGroups: io.crossGroups });
        x = r.out;
        present.push(r.present!);
      }
      const logits = b.scope('cls.predictions', () => {
        const p = 'cls.predictions';
        const last = position(b, x, -1, 'last'); // (B, W)
        const t = activation(b, dense(ctx, last, `${p}.transform.dense`, d.W, d.W, 'transform'), d.act);
        const h = layerNorm(ctx, t, `${p}.transform.LayerNorm`, d.W, d.eps, 'transform_norm');
        // The head (V, W), tied to the word embeddings unless stored apart: Gemm with transB reads it as stored.
        const V = ctx.int('vocab_size');
        // Untied, transformers reads the head alone and newly initialises a missing one (weight random, bias zeros).
        const untied = !ctx.bool('tie_embeddings');
        const why = (what: string) => ({ neededBecause: `its config does not tie the LM head to the word embeddings and cls.predictions.bias (tie_embeddings false; config: tie_word_embeddings false at the top level and in text_config), and transformers would leave a missing ${what}` });
        const weight = untied ? ctx.param(HEAD_WEIGHT, [V, d.W], why('head random')) : tiedOrOwn(ctx, HEAD_WEIGHT, tiedSource(ctx, HEAD_WEIGHT, WORDS), [V, d.W]);
        const bias = untied ? ctx.param(HEAD_BIAS, [V], why('head bias at zeros')) : tiedOrOwn(ctx, HEAD_BIAS, tiedSource(ctx, HEAD_BIAS, BIAS), [V]);
        return b.op('Gemm', [h, weight, bias], { transB: 1 }, { name: 'logits' }); // (B, V)
      });
      return { logits, present };
    },
  },
};
