/**
 * What a run streams to its consumers (terminal view, `--json`, the daemon's event stream): the
 * states of the loop, each written to the event log before anyone sees it, and the progress of
 * every tuning step, which is live information only and not logged.
 */
import type { RunEvent, Strategy } from "../io/RunEvent.ts"
import type { ModelState } from "./ModelState.ts"

export interface TuneProgress {
  readonly strategy: Strategy
  readonly iteration: number
  readonly attempt: number
  /** The tuner's kind and its position in the plan's list. */
  readonly tuner: string
  readonly position: number
  readonly step: number
  readonly steps: number
  readonly loss: number
  /** Tokens this step trained on. */
  readonly tokens: number
  /** Tokens this tuning has trained on so far, steps before a resume included. */
  readonly tuningTokens: number
  readonly metrics: Readonly<Record<string, number>>
  /** Seconds since this tuning (or its resumption) started, for rates and an ETA. */
  readonly seconds: number
}

/** The loop's elements: a state (a stage's result) or a tuning step. */
export type LoopUpdate =
  | { readonly _tag: "State"; readonly state: ModelState }
  | { readonly _tag: "Step"; readonly progress: TuneProgress }

/** A run's elements: a logged event (with its `seq`) or a tuning step. */
export type RunUpdate =
  | { readonly _tag: "Event"; readonly event: RunEvent }
  | { readonly _tag: "Step"; readonly progress: TuneProgress }
