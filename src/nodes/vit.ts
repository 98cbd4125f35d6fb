// vit: the ViT image encoder of BLIP (ViT-B/16, ViT-L/16) and BLIP-2 / InstructBLIP (EVA ViT-g/14).
// image (B, 3, S, S) -> patch embedding + class token + positions -> `depth` pre-norm blocks
// -> post layer norm -> features (B, 1 + (S/P)^2, width).
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, oneOf, pick } from './schema.js';

export const Vit: NodeKind = {
  kind: 'vit',
  doc: 'A ViT image encoder: patches of the image, a class token and learned positions through pre-norm transformer blocks.',
  ports: [{ name: '', accepts: ['image'], required: true, doc: 'the image input' }],
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
};
