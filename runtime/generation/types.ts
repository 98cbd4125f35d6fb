// The contract between the generation loop and a model.

/** One decoder call. Rows are batch rows (batch x beams after expansion). */
export interface StepInput {
  /** New token ids, row-major (batch, seqLen): the whole prompt at prefill, one token afterwards. */
  inputIds: BigInt64Array;
  batch: number;
  seqLen: number;
  /** Attention mask over past and new positions, row-major (batch, pastLength + seqLen); 0 = padding. */
  attentionMask: BigInt64Array;
  /** Tokens already in the model's cache (0 at prefill). */
  pastLength: number;
  /** True on the first call of a generation. */
  prefill: boolean;
}

export interface StepOutput<S> {
  /** Next-token logits of the last position, row-major (batch, vocab). */
  logits: Float32Array;
  vocab: number;
  /** The model's state after this call (KV cache, cross-attention inputs, ...). */
  state: S;
}

/**
 * A language model driven one step at a time. `state` is opaque to the loop: it is passed back on
 * the next call and reordered along the batch dimension for beam search.
 */
export interface StepModel<S = unknown> {
  step(input: StepInput, state: S | undefined): Promise<StepOutput<S>>;
  /**
   * Gather batch rows: row i of the result is row rows[i] of `state` (rows may repeat). The result
   * takes over `state`'s resources (it may share them): the loop disposes the result, not `state`.
   */
  reorder(state: S, rows: number[]): S | Promise<S>;
  /**
   * Release resources held by a state that will not be used again (optional). The loop calls it
   * once for every state step() or greedy() returned, however it ends (something thrown included).
   */
  dispose?(state: S): void;
  /**
   * Greedy steps inside the model (optional; greedy decoding whose only logits processors are
   * minimum lengths uses it): feed `tokens`, then choose up to `steps` tokens by argmax — the EOS
   * ids banned in the first `eosBanSteps` of them, `pad` for rows already finished or finishing on
   * an id of `eos` — stopping once all rows have finished. Returns the tokens of each iteration
   * and the state with every token but the last one fed.
   */
  greedy?(tokens: number[], state: S, steps: number, eos: number[], pad: number, finished: boolean[], eosBanSteps: number): Promise<{ tokens: number[][]; state: S }>;
}

/** A generation step event for streaming (greedy and sampling). */
export interface TokenEvent {
  /** 0-based index of the generated token. */
  step: number;
  /** The token chosen for every row (padding for rows that had finished). */
  tokens: number[];
  /** Rows that are finished after this token. */
  finished: boolean[];
}

export interface GenerationOptions {
  /** New tokens at most (takes precedence over maxLength, as in transformers). */
  maxNewTokens?: number;
  /** Total length at most (prompt included). Default: prompt + 20, capped at maxPositionEmbeddings. */
  maxLength?: number;
  /** The model's max_position_embeddings: caps the default length only (transformers' cap). */
  maxPositionEmbeddings?: number;
  /**
   * Where maxLength came from when no caller set it ("the graph's generation block"): a message
   * refusing it then names the model's default and its source, not an option the caller never gave.
   */
  maxLengthFrom?: string;
  minNewTokens?: number;
  minLength?: number;
  numBeams?: number;
  numReturnSequences?: number;
  doSample?: boolean;
  /** Sampling warpers; transformers' defaults: temperature 1, top_k 50, top_p 1. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  repetitionPenalty?: number;
  noRepeatNgramSize?: number;
  lengthPenalty?: number;
  earlyStopping?: boolean | 'never';
  /** One id or a list; null/undefined: generate until the length limit. */
  eosTokenId?: number | number[] | null;
  /** Padding for finished rows; defaults to the first EOS id. */
  padTokenId?: number | null;
  /** The language model's configured vocabulary (beam search splits candidates by it); default: logits width. */
  vocabSize?: number;
  /** Seed of the sampling PRNG (reproducible for a seed; torch's RNG is not reproduced). Default 0: the same draws every call. */
  seed?: number;
  /** A custom uniform [0, 1) source for sampling (overrides seed). */
  random?: () => number;
  /**
   * A stopping criterion for one row (transformers' StoppingCriteria, per row), asked after each of
   * its new tokens (`tokens`: the row's tokens after the prompt); true finishes the row, which is
   * padded from then on as after an EOS. Greedy and sampling; beam search does not ask it.
   */
  stopRow?: (row: number, tokens: number[]) => boolean;
  /** Called after every generated token (greedy and sampling). */
  onToken?: (e: TokenEvent) => void;
  /**
   * Stops the loop: looked at before every model call (the prefill, each step, each in-model
   * greedy chunk; beam search too), which then throws the signal's reason.
   */
  signal?: AbortSignal;
  /**
   * Record each chosen token's log-probability under the model (log-softmax of its logits, before
   * any logits processor: transformers' `output_logits`), with the `top` most likely tokens of that
   * step. Greedy and sampling; the loop then runs on the host.
   */
  logprobs?: { top: number };
  /**
   * Greedy decoding inside the model (StepModel.greedy): at most this many tokens per model call
   * (default: all that are left; 0: one model call per token, on the host). Smaller values stream
   * onToken events sooner.
   */
  greedyChunk?: number;
}

/** A chosen token's log-probability, and the most likely tokens of its step (best first, ties by lower id). */
export interface TokenLogprob {
  token: number;
  logprob: number;
  top: Array<{ token: number; logprob: number }>;
}

export interface GenerationResult {
  /** (batch x numReturnSequences) rows: prompt + generated tokens, padded as transformers pads. */
  sequences: number[][];
  /** Beam search: the final (length-penalised) score of each returned sequence. */
  sequenceScores?: number[];
  /** With GenerationOptions.logprobs: per row, one entry per new token through the one that finished it. */
  logprobs?: TokenLogprob[][];
  promptLength: number;
  /** Model calls made (prefill included). */
  modelCalls: number;
}
