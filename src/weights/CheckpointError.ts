// A checkpoint that cannot be read: a missing or unreadable file, a corrupt or truncated
// safetensors file, an inconsistent shard index, an unsupported dtype. Always names the file (and
// the tensor, when one is at fault). Codes (4xxx: lowering and checkpoints):
//
//   BLIP4001  checkpoint directory or config.json missing / unreadable / not JSON (the compiler also
//             raises it for a tokenizer blip run could not build)
//   BLIP4002  no safetensors weights in the directory (or only PyTorch .bin files)
//   BLIP4003  corrupt safetensors header (size, JSON, an entry's dtype/shape/offsets)
//   BLIP4004  truncated safetensors file (data shorter than the header says), or one that changed
//             (size or modification time) between its header and a tensor read
//   BLIP4005  unsupported tensor dtype
//   BLIP4006  inconsistent shard index (missing shard, tensor not in its shard, duplicate tensor)
import { BlipError, type BlipCode } from '../cli/Command.js';

export class CheckpointError extends BlipError {
  override name = 'CheckpointError';
  constructor(
    code: BlipCode,
    message: string,
    readonly file?: string,
    readonly tensor?: string,
  ) {
    super(code, message);
  }
}
