/**
 * ModelState: one element of the loop's stream — a model at some phase of some iteration,
 * with its size, metrics and timings — and Stage, a step from one state to the next.
 *
 * The tensors of `model` belong to the loop: a state's model is valid until the next state
 * is pulled from the stream (the loop disposes superseded models), so consumers read what
 * they need (metrics, sizes) and keep no tensors.
 */
import { Effect } from "effect"
import type { Model } from "../model/Model.ts"
import { countParams } from "../model/Params.ts"
import type { DatasetScore, Phase, RunEvent, Strategy } from "../io/RunEvent.ts"

export interface ModelState {
  readonly strategy: Strategy
  readonly iteration: number
  readonly attempt: number
  readonly phase: Phase
  readonly model: Model
  readonly metrics?: Readonly<Record<string, DatasetScore>>
  /** Seconds per stage in this iteration so far. */
  readonly timings: Readonly<Record<string, number>>
  readonly tune?: RunEvent["tune"]
  readonly pruned?: RunEvent["pruned"]
  /** Stage folder of the checkpoint this state was saved to. */
  readonly checkpoint?: string
  readonly message?: string
  /** On `finished`: whether the target was reached. */
  readonly targetReached?: boolean
}

/** A step of the loop: prune, tune, evaluate, gate, checkpoint, or one of a user's. */
export type Stage<E = never, R = never> = (state: ModelState) => Effect.Effect<ModelState, E, R>

/** The event-log line of a state. */
export const toEvent = (state: ModelState): Omit<RunEvent, "seq" | "time"> => {
  const counts = countParams(state.model.config)
  return {
    strategy: state.strategy,
    iteration: state.iteration,
    attempt: state.attempt,
    phase: state.phase,
    parameters: { total: counts.total, nonEmbedding: counts.nonEmbedding },
    ...(state.metrics !== undefined ? { metrics: state.metrics } : {}),
    ...(Object.keys(state.timings).length > 0 ? { timings: state.timings } : {}),
    ...(state.tune !== undefined ? { tune: state.tune } : {}),
    ...(state.pruned !== undefined ? { pruned: state.pruned } : {}),
    ...(state.checkpoint !== undefined ? { checkpoint: state.checkpoint } : {}),
    ...(state.message !== undefined ? { message: state.message } : {}),
    ...(state.targetReached !== undefined ? { targetReached: state.targetReached } : {})
  }
}

