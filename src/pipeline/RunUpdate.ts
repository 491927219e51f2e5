/**
 * What a run streams to its consumers (terminal view, `--json`, the daemon's event stream, the
 * daemon itself from a run's process): the states of the loop, each written to the event log
 * before anyone sees it, and the progress of every tuning step, which is live information only
 * and not logged. Both are schemas, because a run's process sends them to the daemon encoded.
 */
import { Schema } from "effect"
import { RunEvent, Strategies } from "../io/RunEvent.ts"
import type { ModelState } from "./ModelState.ts"

export const TuneProgress = Schema.Struct({
  strategy: Schema.Literals(Strategies),
  iteration: Schema.Int,
  attempt: Schema.Int,
  /** The tuner's kind and its position in the plan's list. */
  tuner: Schema.String,
  position: Schema.Int,
  step: Schema.Int,
  steps: Schema.Int,
  loss: Schema.Number,
  /** Tokens this step trained on. */
  tokens: Schema.Int,
  /** Tokens this tuning has trained on so far, steps before a resume included. */
  tuningTokens: Schema.Int,
  metrics: Schema.Record(Schema.String, Schema.Number),
  /** Seconds since this tuning (or its resumption) started, for rates and an ETA. */
  seconds: Schema.Number
})
export type TuneProgress = typeof TuneProgress.Type

/** The loop's elements: a state (a stage's result) or a tuning step. */
export type LoopUpdate =
  | { readonly _tag: "State"; readonly state: ModelState }
  | { readonly _tag: "Step"; readonly progress: TuneProgress }

/** A run's elements: a logged event (with its `seq`) or a tuning step. */
export const RunUpdate = Schema.Union([
  Schema.TaggedStruct("Event", { event: RunEvent }),
  Schema.TaggedStruct("Step", { progress: TuneProgress })
])
export type RunUpdate = typeof RunUpdate.Type
