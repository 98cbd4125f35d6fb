// vit: the ViT image encoder of BLIP (ViT-B/16, ViT-L/16) and BLIP-2 / InstructBLIP (EVA ViT-g/14).
// image (B, 3, S, S) -> patch embedding + class token + positions -> `depth` pre-norm blocks
// -> post layer norm -> features (B, 1 + (S/P)^2, width).
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, oneOf, pick } from './schema.js';
import type { ImageFlow, LowerContext } from '../lower/contract.js';
import type { Value } from '../lower/GraphBuilder.js';
import { activation, attend, mergeHeads, splitHeads } from '../lower/transformer.js';
import { dense, layerNorm } from '../lower/blocks.js';
import { CompileError } from '../lower/CompileError.js';
import { BLIP_VISION_MODEL_TYPES } from '../weights/transformersConfig.js';

export const Vit: NodeKind = {
  kind: 'vit',
  doc: 'A ViT image encoder: patches of the image, a class token and learned positions through pre-norm transformer blocks.',
  ports: [{ name: '', role: 'image', accepts: ['image'], required: true, doc: 'the image input' }],
  output: 'features',
  attrSchema: attrSchema('vit', {
    image_size: int('input resolution in pixels (square)', 16, 4096),
    patch_size: int('patch side in pixels', 1, 256),
    width: int('hidden size (config: hidden_size)'),
    depth: int('number of transformer blocks (config: num_hidden_layers)', 1, 1024),
    heads: int('attention heads (config: num_attention_heads)', 1, 1024),
    mlp_width: int('MLP hidden size (config: intermediate_size)'),
    layer_norm_eps: eps('layer-norm epsilon'),
    pre_norm: bool('layer norm before attention and MLP (true for every BLIP-family ViT)'),
    class_token: bool('a learned class token is prepended (true for every BLIP-family ViT)'),
    qkv_bias: bool('the q/k/v projection has a bias'),
    act: oneOf('MLP activation (config: hidden_act)', ACTIVATIONS),
  }),
  defaultConfig: 'vision_config',
  // BlipVisionConfig's, Blip2VisionConfig's and InstructBlipVisionConfig's, which transformersConfig.ts reads with those classes
  modelTypes: [...BLIP_VISION_MODEL_TYPES],
  fromConfig(section) {
    return pick(section, {
      image_size: 'image_size',
      patch_size: 'patch_size',
      width: 'hidden_size',
      depth: 'num_hidden_layers',
      heads: 'num_attention_heads',
      mlp_width: 'intermediate_size',
      layer_norm_eps: 'layer_norm_eps',
      qkv_bias: 'qkv_bias',
      act: 'hidden_act',
    });
  },
  outputWidth: (a) => n(a, 'width'),
  divides: [
    { part: 'heads', whole: 'width' },
    { part: 'patch_size', whole: 'image_size' },
  ],
  imageSize: (a) => n(a, 'image_size'),
  outputLength: (a) => {
    const [image, patch] = [n(a, 'image_size'), n(a, 'patch_size')];
    if (image === undefined || patch === undefined) return undefined;
    const grid = Math.floor(image / patch); // (the lowering floors the grid as transformers does)
    return (a.class_token === false ? 0 : 1) + grid * grid;
  },
};

// ---- lowering (src/lower/contract.ts) ----
// Tensor names follow BlipVisionModel / Blip2VisionModel (prefix `vision_model`):
// embeddings.{patch_embedding, class_embedding, position_embedding}, encoder.layers.{i}.{layer_norm1,
// self_attn.qkv, self_attn.projection, layer_norm2, mlp.fc1, mlp.fc2}, post_layernorm.
Vit.lowering = {
  defaults: { pre_norm: true, class_token: true, act: 'gelu' },
  ignored: () => [/(.*\.)?position_ids/],
  lower(ctx, inputs) {
    const { b } = ctx;
    const image = inputs[''] as ImageFlow;
    const [W, P, S, heads] = [ctx.int('width'), ctx.int('patch_size'), ctx.int('image_size'), ctx.int('heads')];
    const [mlpW, eps, act] = [ctx.int('mlp_width'), ctx.num('layer_norm_eps'), ctx.str('act')];
    // at the attribute that asks for it (an override's line), not at the node it overrides
    for (const a of ['pre_norm', 'class_token']) if (!ctx.bool(a)) throw new CompileError('BLIP4015', `vit lowers pre-norm ViTs with a class token only (${a} is false)`, ctx.attrLoc(a));
    const D = W / heads;
    const grid = Math.floor(S / P);

    let x = b.scope('embeddings', () => {
      const w = ctx.param('embeddings.patch_embedding.weight', [W, 3, P, P]);
      const bias = ctx.param('embeddings.patch_embedding.bias', [W]);
      const patches = b.op('Conv', [image.pixels, w, bias], { kernel_shape: [P, P], strides: [P, P] }, { name: 'patches' }); // (B, W, g, g)
      const seq = b.transpose(b.reshape(patches, [0, W, grid * grid], 'patches_flat'), [0, 2, 1], 'patch_embeds'); // (B, g², W)
      const clsShape = b.concat([b.shape(image.pixels, 0, 1, 'batch'), b.int64([1, W], [2], 'cls_dims')], 0, 'cls_shape');
      const cls = b.op('Expand', [ctx.param('embeddings.class_embedding', [1, 1, W]), clsShape], {}, { name: 'class_embeds' }); // (B, 1, W)
      const tokens = b.concat([cls, seq], 1, 'tokens'); // (B, 1 + g², W)
      return b.add(tokens, ctx.param('embeddings.position_embedding', [1, 1 + grid * grid, W]), 'embeddings');
    });

    for (let i = 0; i < ctx.int('depth'); i++) {
      const p = `encoder.layers.${i}`;
      x = b.scope(p, () => {
        const h = layerNorm(ctx, x, `${p}.layer_norm1`, W, eps, 'layer_norm1');
        const attn = b.scope('self_attn', () => {
          const qkvW = ctx.param(`${p}.self_attn.qkv.weight`, [3 * W, W], { transpose: true });
          const qkv = b.linear(h, qkvW, qkvBias(ctx, `${p}.self_attn`, W), 'qkv'); // (B, T, 3W) = [q | k | v]
          const [q, k, v] = b.ops('Split', [qkv], { axis: -1 }, { outputs: ['q', 'k', 'v'] }); // (B, T, W) each
          const heads4 = (t: Value, role: string) => splitHeads(b, t, heads, D, role); // (B, N, T, D)
          const o = attend(b, heads4(q, 'query'), heads4(k, 'key'), heads4(v, 'value'), { scale: D ** -0.5 }); // scores · D^-½, as BlipAttention
          return dense(ctx, mergeHeads(b, o, W, 'context'), `${p}.self_attn.projection`, W, W, 'projection');
        });
        const r = b.add(attn, x, 'residual1');
        const h2 = layerNorm(ctx, r, `${p}.layer_norm2`, W, eps, 'layer_norm2');
        const m = b.scope('mlp', () => dense(ctx, activation(b, dense(ctx, h2, `${p}.mlp.fc1`, W, mlpW, 'fc1'), act), `${p}.mlp.fc2`, mlpW, W, 'fc2'));
        return b.add(m, r, 'residual2');
      });
    }
    return { type: 'features', hidden: layerNorm(ctx, x, 'post_layernorm', W, eps, 'post_layernorm') }; // (B, 1 + g², W)
  },
};

/**
 * The qkv bias: BLIP stores `qkv.bias`; BLIP-2's EVA ViT stores `q_bias` and `v_bias` and no key
 * bias (Blip2Attention concatenates q_bias, zeros, v_bias); a `qkv_bias: false` ViT has none.
 */
function qkvBias(ctx: LowerContext, p: string, W: number): Value | undefined {
  // Blip2Attention gives qkv a bias only when the config's qkv_bias says so, whatever is stored
  if (ctx.attrs.qkv_bias === false) return undefined;
  // older BLIP-2 saves: q_bias and v_bias, the key third zero
  if (!ctx.has(`${p}.qkv.bias`) && (ctx.has(`${p}.q_bias`) || ctx.has(`${p}.v_bias`))) {
    const zeros = ctx.b.constant(new Float32Array(W), [W], 'k_bias');
    return ctx.b.concat([ctx.param(`${p}.q_bias`, [W]), zeros, ctx.param(`${p}.v_bias`, [W])], 0, 'qkv_bias'); // a missing half is named
  }
  // BLIP's ViT (its config has no qkv_bias) and transformers 5's saves: one bias over q, k and v
  return ctx.param(`${p}.qkv.bias`, [3 * W]); // a missing one is named
}
