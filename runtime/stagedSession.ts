// A session that is opened when a call first runs it and released when the call's stage is over
// (LoadOptions.staged). A one-shot `blip run` then never holds the image encoder's and the decoder's
// weights at once: encode.onnx is opened, encodes the batch and is released before decoder.onnx is
// opened, so the peak memory is the larger stage, not the sum of both (docs/performance.md, "peak
// RSS"). Its input and output names come from the manifest until it is open; opening checks that
// the graph declares exactly those.
import * as ort from 'onnxruntime-node';
import { BlipRuntimeError } from './errors.js';
import type { GraphEntry } from '../src/artifact/manifest.js';
import type { OpenedSession } from './session.js';
import { isLoopName } from './generation/greedyLoop.js';

/** What a stage tells its opener about the work ahead (runtime/model.ts decides from it). */
export interface OpenHint {
  /** Decoder runs ahead (steps x beams), when known. */
  decoderRuns?: number;
}

export class StagedSession {
  private opened: Promise<ort.InferenceSession> | undefined;

  private readonly declared: { inputs: readonly string[]; outputs: readonly string[] };
  private current: ort.InferenceSession | undefined;

  constructor(
    private readonly graph: GraphEntry,
    private readonly opener: (o: OpenHint) => Promise<OpenedSession>,
  ) {
    this.declared = { inputs: graph.inputs.map((t) => t.name), outputs: graph.outputs.map((t) => t.name) };
  }

  /** The manifest's names until the session is open, then the session's (a rewritten graph may add some: greedyLoop.ts). */
  get inputNames(): readonly string[] {
    return this.current?.inputNames ?? this.declared.inputs;
  }

  get outputNames(): readonly string[] {
    return this.current?.outputNames ?? this.declared.outputs;
  }

  /** Whether the graph's session is open now. */
  get isOpen(): boolean {
    return this.opened !== undefined;
  }

  private session(hint: OpenHint = {}): Promise<ort.InferenceSession> {
    this.opened ??= (async () => {
      const { session } = await this.opener(hint);
      // names the runtime's own rewrites add (greedyLoop.ts) are not the manifest's
      const own = (n: string) => !isLoopName(n);
      const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
      if (!same(session.inputNames.filter(own), this.declared.inputs) || !same(session.outputNames.filter(own), this.declared.outputs)) {
        await session.release();
        throw new BlipRuntimeError('BLIP5044', `${this.graph.file} declares inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}], not the manifest's; recompile the model`);
      }
      this.current = session;
      return session;
    })();
    const p = this.opened;
    p.catch(() => {
      if (this.opened === p) this.opened = undefined;
    });
    return p;
  }

  /** Opens the session now (a no-op when it is open), with what the opener should know of its use. */
  async open(hint: OpenHint = {}): Promise<void> {
    await this.session(hint);
  }

  async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    return (await this.session()).run(feeds);
  }

  /** Releases the session (its weights); the next run opens it again. */
  async release(): Promise<void> {
    const p = this.opened;
    this.opened = undefined;
    this.current = undefined;
    if (!p) return;
    const s = await p.catch(() => undefined);
    await s?.release();
  }
}
