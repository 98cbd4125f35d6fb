// The node-kind registry: every kind a `.blip` file may name, by its keyword.
import type { NodeKind } from './NodeKind.js';
import { Vit } from './vit.js';
import { Bert } from './bert.js';
import { QFormer } from './qformer.js';
import { Linear } from './linear.js';
import { Mlp } from './mlp.js';
import { Opt } from './opt.js';
import { Llama } from './llama.js';
import { T5 } from './t5.js';
import { Classifier } from './classifier.js';
import { Embed } from './embed.js';

export const nodeKinds: Record<string, NodeKind> = {
  vit: Vit,
  bert: Bert,
  qformer: QFormer,
  linear: Linear,
  mlp: Mlp,
  opt: Opt,
  llama: Llama,
  t5: T5,
  classifier: Classifier,
  embed: Embed,
};

export type { NodeKind, PortRole, PortSpec } from './NodeKind.js';
export { portWith, roleOf } from './NodeKind.js';
export { Vit, Bert, QFormer, Linear, Mlp, Opt, Llama, T5, Classifier, Embed };
