// Progress on stderr: samples/s and an ETA from the share of input bytes read. On a terminal
// one line is redrawn twice a second; otherwise a line is printed every 10 seconds.
import type { ShardProgress } from './shard.js';

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  s = Math.round(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export class Progress implements ShardProgress {
  private readonly start = Date.now();
  private doneBytes = 0;
  private doneSamples = 0;
  private shardsDone = 0;
  private lastDraw = 0;
  private readonly tty: boolean;
  private readonly every: number;

  constructor(
    private readonly stream: NodeJS.WritableStream | undefined,
    private readonly totalBytes: number,
    private readonly totalShards: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tty = !!(stream as { isTTY?: boolean } | undefined)?.isTTY;
    this.every = this.tty ? 500 : 10_000;
    this.lastDraw = this.now();
  }

  bytes(n: number): void {
    this.doneBytes += n;
    this.maybeDraw();
  }
  samples(n: number): void {
    this.doneSamples += n;
    this.maybeDraw();
  }
  shardDone(): void {
    this.shardsDone++;
    this.maybeDraw();
  }

  line(): string {
    const elapsed = Math.max(1e-3, (this.now() - this.start) / 1000);
    const rate = this.doneSamples / elapsed;
    const frac = this.totalBytes > 0 ? Math.min(1, this.doneBytes / this.totalBytes) : 0;
    const eta = frac > 0 ? (elapsed * (1 - frac)) / frac : NaN;
    return `capfilt: ${this.doneSamples} samples, ${rate.toFixed(1)} samples/s, shards ${this.shardsDone}/${this.totalShards}, ${(frac * 100).toFixed(1)}%, ETA ${formatDuration(eta)}`;
  }

  private maybeDraw(): void {
    if (!this.stream) return;
    const t = this.now();
    if (t - this.lastDraw < this.every) return;
    this.lastDraw = t;
    this.stream.write(this.tty ? `\r\x1b[K${this.line()}` : `${this.line()}\n`);
  }

  finish(): void {
    if (!this.stream) return;
    const elapsed = (this.now() - this.start) / 1000;
    this.stream.write(`${this.tty ? '\r\x1b[K' : ''}capfilt: ${this.doneSamples} samples in ${formatDuration(elapsed)} (${(this.doneSamples / Math.max(1e-3, elapsed)).toFixed(1)} samples/s), shards ${this.shardsDone}/${this.totalShards}\n`);
  }
}
