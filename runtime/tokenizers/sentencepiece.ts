// A SentencePiece `tokenizer.model` (ModelProto, protobuf) read without a protobuf library, and the
// vocabulary / merges transformers 5 extracts from it for a BPE tokenizer class
// (SentencePieceExtractor.extract + generate_merges in transformers/tokenization_utils_base.py).
import { TokenizerLoadError } from '../errors.js';

/** sentencepiece_model.proto SentencePiece.Type */
export const PieceType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface SpPiece {
  piece: string;
  score: number;
  type: number;
}

export interface SpModel {
  pieces: SpPiece[];
  trainer: {
    /** 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR */
    modelType: number;
    byteFallback: boolean;
    unkId: number;
    bosId: number;
    eosId: number;
    padId: number;
    unkPiece: string;
    bosPiece: string;
    eosPiece: string;
    padPiece: string;
  };
  normalizer: {
    name?: string;
    precompiledCharsmap?: Uint8Array;
    addDummyPrefix: boolean;
    removeExtraWhitespaces: boolean;
    escapeWhitespaces: boolean;
  };
}

class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly file: string,
  ) {}
  fail(what: string): never {
    throw new TokenizerLoadError(`${this.file} is not a SentencePiece model (${what} at byte ${this.pos})`, this.file, 'BLIP5021');
  }
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) this.fail('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    return this.fail('varint too long');
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.buf.length) this.fail('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.fail(`unsupported wire type ${wire}`);
    if (this.pos > this.buf.length) this.fail('truncated field');
  }
  /** Iterate fields: calls fn(field, wire) which must consume the value (or return false to skip it). */
  fields(fn: (field: number, wire: number) => boolean): void {
    while (this.pos < this.buf.length) {
      const key = this.varint();
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (field === 0) this.fail('field number 0');
      if (!fn(field, wire)) this.skip(wire);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function toInt32(v: number): number {
  // negative int32 values are encoded as 10-byte varints (two's complement in 64 bits)
  return v >= 2 ** 63 ? v - 2 ** 64 : v > 2 ** 31 - 1 ? v - 2 ** 32 : v;
}

/** Parse the fields of ModelProto that tokenization needs. */
export function parseSentencePieceModel(buf: Uint8Array, file = 'tokenizer.model'): SpModel {
  const model: SpModel = {
    pieces: [],
    trainer: { modelType: 1, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1, unkPiece: '<unk>', bosPiece: '<s>', eosPiece: '</s>', padPiece: '<pad>' },
    normalizer: { addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true },
  };
  const r = new Reader(buf, file);
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return r.fail('invalid UTF-8 in a string');
    }
  };
  r.fields((field, wire) => {
    if (field === 1 && wire === 2) {
      const sub = new Reader(r.bytes(), file);
      const p: SpPiece = { piece: '', score: 0, type: PieceType.NORMAL as number };
      sub.fields((f, w) => {
        if (f === 1 && w === 2) p.piece = str(sub.bytes());
        else if (f === 2 && w === 5) {
          p.score = new DataView(sub.buf.buffer, sub.buf.byteOffset + sub.pos, 4).getFloat32(0, true);
          sub.pos += 4;
        } else if (f === 3 && w === 0) p.type = sub.varint();
        else return false;
        return true;
      });
      model.pieces.push(p);
      return true;
    }
    if (field === 2 && wire === 2) {
      const sub = new Reader(r.bytes(), file);
      const t = model.trainer;
      sub.fields((f, w) => {
        if (w === 0 && [3, 35, 40, 41, 42, 43].includes(f)) {
          const v = toInt32(sub.varint());
          if (f === 3) t.modelType = v;
          else if (f === 35) t.byteFallback = v !== 0;
          else if (f === 40) t.unkId = v;
          else if (f === 41) t.bosId = v;
          else if (f === 42) t.eosId = v;
          else t.padId = v;
          return true;
        }
        if (w === 2 && f >= 45 && f <= 48) {
          const s = str(sub.bytes());
          if (f === 45) t.unkPiece = s;
          else if (f === 46) t.bosPiece = s;
          else if (f === 47) t.eosPiece = s;
          else t.padPiece = s;
          return true;
        }
        return false;
      });
      return true;
    }
    if (field === 3 && wire === 2) {
      const sub = new Reader(r.bytes(), file);
      const n = model.normalizer;
      sub.fields((f, w) => {
        if (f === 1 && w === 2) n.name = str(sub.bytes());
        else if (f === 2 && w === 2) n.precompiledCharsmap = sub.bytes().slice();
        else if (f >= 3 && f <= 5 && w === 0) {
          const v = sub.varint() !== 0;
          if (f === 3) n.addDummyPrefix = v;
          else if (f === 4) n.removeExtraWhitespaces = v;
          else n.escapeWhitespaces = v;
        } else return false;
        return true;
      });
      return true;
    }
    return false;
  });
  if (model.pieces.length === 0) r.fail('no pieces');
  return model;
}

/** Python's len() of a str: code points. */
function cpLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * transformers' generate_merges(vocab) with vocab_scores None: for every piece, every split into two
 * pieces that are both in the vocabulary, ordered by (id of the merged piece, len(left), len(right)),
 * ties by the ids of the parts.
 */
export function generateMerges(vocab: Map<string, number>): Array<[string, string]> {
  const merges: Array<[string, string, number]> = [];
  for (const [merge, score] of vocab) {
    const cps = Array.from(merge);
    const local: Array<[string, string, number]> = [];
    for (let i = 1; i < cps.length; i++) {
      const l = cps.slice(0, i).join('');
      const r = cps.slice(i).join('');
      if (vocab.has(l) && vocab.has(r)) local.push([l, r, score]);
    }
    local.sort((a, b) => vocab.get(a[0])! - vocab.get(b[0])! || vocab.get(a[1])! - vocab.get(b[1])!);
    merges.push(...local);
  }
  // Python's sort is stable, as is Array.prototype.sort
  const len = new Map<string, number>();
  const L = (s: string): number => {
    let v = len.get(s);
    if (v === undefined) len.set(s, (v = cpLen(s)));
    return v;
  };
  merges.sort((a, b) => a[2] - b[2] || L(a[0]) - L(b[0]) || L(a[1]) - L(b[1]));
  return merges.map(([l, r]) => [l, r]);
}
