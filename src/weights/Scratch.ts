// Reusable memory for the arrays that live only while one weight is produced and written: the
// bytes read from the checkpoint, their float32 widening, a transpose, the float16 narrowing.
//
// Why: every fresh multi-megabyte ArrayBuffer is mapped anew and faults on first touch, one page
// at a time. On a virtual machine that cost as much as the conversion work itself (~25 ns per
// float32 written, against ~2 ns into memory already touched), so compiling a 7.5 GB checkpoint
// spent most of its time in page faults. Handing out the same memory for every tensor leaves
// only the faults of the first, largest ones.
//
// Arrays handed out are valid until the next `reset()`; their contents start as whatever the
// last tensor left (callers write every element).

const ALIGN = 64;

export class Scratch {
  private buffer = new ArrayBuffer(0);
  private used = 0;
  /** Bytes asked for since the last reset, including requests that did not fit. */
  private wanted = 0;

  /** `n` bytes, 64-byte aligned. */
  bytes(n: number): Uint8Array {
    const size = Math.ceil(n / ALIGN) * ALIGN;
    this.wanted += size;
    if (this.used + size > this.buffer.byteLength) return new Uint8Array(n); // grows at the next reset
    const out = new Uint8Array(this.buffer, this.used, n);
    this.used += size;
    return out;
  }

  float32(n: number): Float32Array {
    const b = this.bytes(n * 4);
    return new Float32Array(b.buffer, b.byteOffset, n);
  }

  uint16(n: number): Uint16Array {
    const b = this.bytes(n * 2);
    return new Uint16Array(b.buffer, b.byteOffset, n);
  }

  /** Everything handed out since the last reset is dead; the next round fits what this one needed. */
  reset(): void {
    if (this.wanted > this.buffer.byteLength) this.buffer = new ArrayBuffer(this.wanted);
    this.used = 0;
    this.wanted = 0;
  }

  /** Bytes held between rounds. */
  get capacity(): number {
    return this.buffer.byteLength;
  }
}
