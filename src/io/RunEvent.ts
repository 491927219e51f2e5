/**
 * One line of a run folder's events.ndjson: a ModelState as it passed through the loop
 * (iteration, phase, size, metrics, timings). The event log is the run's history: the terminal
 * view, `--json` output, report.html and resume all read this one shape.
 */
import { Schema } from "effect"

/** `failed`: the run stopped on an error (a gate with `onFailure: fail`, a stage that failed); its message says why. */
export const Phases = ["loaded", "pruned", "tuned", "evaluated", "accepted", "rolled-back", "interrupted", "finished", "failed"] as const
export const Phase = Schema.Literals(Phases)
export type Phase = typeof Phase.Type

/** Which machinery produced the run: the loop itself, or a baseline run in the same machinery. */
export const Strategies = ["ptl", "one-shot", "prune-only"] as const
export const Strategy = Schema.Literals(Strategies)
export type Strategy = typeof Strategy.Type

export const DatasetScore = Schema.Struct({
  /** Fraction correct (exact match / pass@1) for graded data. */
  accuracy: Schema.optionalKey(Schema.Number),
  /** Perplexity for text. */
  perplexity: Schema.optionalKey(Schema.Number),
  examples: Schema.Int
})
export type DatasetScore = typeof DatasetScore.Type

export const RunEvent = Schema.Struct({
  /** Position in the log, from 0. */
  seq: Schema.Int,
  /** ISO-8601 time the event was written. */
  time: Schema.String,
  strategy: Strategy,
  /** Loop iteration (0 = the model as loaded). */
  iteration: Schema.Int,
  /** Try of this iteration: 0 first, 1 after one rollback (with half the step), ... */
  attempt: Schema.Int,
  phase: Phase,
  parameters: Schema.Struct({ total: Schema.Int, nonEmbedding: Schema.Int }),
  /** Evaluation results by dataset name (arith, program, general, a file name). */
  metrics: Schema.optionalKey(Schema.Record(Schema.String, DatasetScore)),
  /** Seconds spent in each stage of this iteration so far (score, prune, tune, evaluate, checkpoint). */
  timings: Schema.optionalKey(Schema.Record(Schema.String, Schema.Number)),
  /**
   * One tuning of this iteration (a plan may list several tuners, each logs its own `tuned`
   * event): the tuner, its steps, tokens, the loss of every step and its own per-step metrics.
   */
  tune: Schema.optionalKey(Schema.Struct({
    kind: Schema.optionalKey(Schema.String),
    /** The low-rank adapters it trained instead of every weight (merged into the weights after). */
    adapter: Schema.optionalKey(Schema.Struct({ rank: Schema.Int, targets: Schema.Array(Schema.String) })),
    steps: Schema.Int,
    tokens: Schema.Int,
    losses: Schema.Array(Schema.Number),
    metrics: Schema.optionalKey(Schema.Record(Schema.String, Schema.Array(Schema.Number)))
  })),
  /** On `finished`: whether the strategy reached the plan's target (false: every further step was rolled back). */
  targetReached: Schema.optionalKey(Schema.Boolean),
  /**
   * What pruning removed, in all layers: `removed` units of `unit` (the plan's first); when the
   * plan prunes several kinds, `perUnit` has each kind's count (neurons, heads = key/value groups, layers).
   */
  pruned: Schema.optionalKey(Schema.Struct({
    unit: Schema.Literals(["neurons", "heads", "layers"]),
    removed: Schema.Int,
    perUnit: Schema.optionalKey(Schema.Record(Schema.String, Schema.Int)),
    detail: Schema.optionalKey(Schema.String)
  })),
  /** Stage folder (relative to the run folder) holding the checkpoint of this state. */
  checkpoint: Schema.optionalKey(Schema.String),
  /** Human-readable note: why a gate failed, where a preempted run saved, the error a run failed with, ... */
  message: Schema.optionalKey(Schema.String)
})
export type RunEvent = typeof RunEvent.Type
