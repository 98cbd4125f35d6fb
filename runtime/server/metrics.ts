// A small Prometheus registry (text exposition format 0.0.4): counters, gauges and histograms
// with labels. GET /metrics renders it.

type Labels = Record<string, string>;

function labelKey(l: Labels): string {
  const keys = Object.keys(l).sort();
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${String(l[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

function fmt(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(`${this.name}${k} ${fmt(v)}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    /** Computed at scrape time instead of set. */
    private readonly collect?: () => Array<[Labels, number]> | number,
  ) {}
  set(v: number, labels: Labels = {}): void {
    this.values.set(labelKey(labels), v);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    if (this.collect) {
      const c = this.collect();
      if (typeof c === 'number') lines.push(`${this.name} ${fmt(c)}`);
      else for (const [l, v] of c) lines.push(`${this.name}${labelKey(l)} ${fmt(v)}`);
    } else {
      if (this.values.size === 0) lines.push(`${this.name} 0`);
      for (const [k, v] of this.values) lines.push(`${this.name}${k} ${fmt(v)}`);
    }
    return lines.join('\n');
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number; labels: Labels }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {}
  observe(v: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0, labels }));
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) s.counts[i]++;
    s.sum += v;
    s.count++;
  }
  count(labels: Labels = {}): number {
    return this.series.get(labelKey(labels))?.count ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${labelKey({ ...s.labels, le: fmt(b) })} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket${labelKey({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${this.name}_sum${labelKey(s.labels)} ${fmt(s.sum)}`);
      lines.push(`${this.name}_count${labelKey(s.labels)} ${s.count}`);
    }
    return lines.join('\n');
  }
}

/** Events per second over a sliding window (generated tokens per second). */
export class Rate {
  private readonly events: Array<[number, number]> = [];
  constructor(private readonly windowMs = 10_000) {}
  add(n: number, now = Date.now()): void {
    this.events.push([now, n]);
    this.trim(now);
  }
  perSecond(now = Date.now()): number {
    this.trim(now);
    const total = this.events.reduce((a, [, n]) => a + n, 0);
    return total / (this.windowMs / 1000);
  }
  private trim(now: number): void {
    while (this.events.length && this.events[0][0] < now - this.windowMs) this.events.shift();
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  add<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }
  render(): string {
    return this.metrics.map((m) => m.render()).join('\n') + '\n';
  }
}

/** The server's metrics. Queue depth and the like are read from the scheduler at scrape time. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter;
  readonly latency: Histogram;
  readonly batchSize: Histogram;
  readonly batchDuration: Histogram;
  readonly tokens: Counter;
  readonly rejected: Counter;
  readonly tokenRate = new Rate();

  constructor(state: { queueDepth: () => Array<[Labels, number]>; inFlight: () => Array<[Labels, number]>; busyWorkers: () => Array<[Labels, number]> }) {
    const r = this.registry;
    this.requests = r.add(new Counter('blip_requests_total', 'HTTP requests answered, by endpoint and status code.'));
    this.latency = r.add(
      new Histogram('blip_request_duration_seconds', 'Time from request to the end of the response, by endpoint.', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]),
    );
    r.add(new Gauge('blip_queue_depth', 'Requests waiting for a worker, by model.', state.queueDepth));
    r.add(new Gauge('blip_requests_in_flight', 'Requests in a running batch, by model.', state.inFlight));
    r.add(new Gauge('blip_workers_busy', 'Workers running a batch, by model.', state.busyWorkers));
    this.batchSize = r.add(new Histogram('blip_batch_size', 'Rows (images, pairs or texts) per model call, by model and task.', [1, 2, 4, 8, 16, 32, 64, 128]));
    this.batchDuration = r.add(new Histogram('blip_batch_duration_seconds', 'Time a worker spent on one batch, by model and task.', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]));
    this.tokens = r.add(new Counter('blip_generated_tokens_total', 'Tokens generated, by model.'));
    r.add(new Gauge('blip_tokens_per_second', 'Tokens generated per second over the last 10 s.', () => this.tokenRate.perSecond()));
    this.rejected = r.add(new Counter('blip_rejected_total', 'Requests refused or cancelled by the server, by reason (queue_full, timeout, draining, client_closed).'));
  }
}
