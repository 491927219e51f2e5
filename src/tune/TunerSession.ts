/**
 * The session every full-weight tuner runs (SFT, distillation, GRPO): a state holding the
 * weights and their AdamW moments, advanced by a step function. The state's tensors belong to
 * the session's Scope from the moment they exist; `finish` hands the weights to the caller.
 * A step and taking its result are one uninterruptible unit, so an interruption lands between
 * steps, when the state is complete and live.
 */
import { Effect, type Scope } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { disposeParams, type Params } from "../model/Params.ts"
import { type AdamWState, disposeAdamW } from "./AdamW.ts"
import type { TuneStep, TunerSession, TunerSnapshot } from "./Tuner.ts"

/** What a full-weight tuner's state holds at least. */
export interface WeightsState {
  readonly params: Params
  readonly optimizer: AdamWState
}

export interface WeightsSessionSpec<S extends WeightsState, E, R> {
  readonly shape: ModelConfig
  /** This tuning's budget. */
  readonly steps: number
  /** Steps done in a state. */
  readonly stepsDone: (state: S) => number
  /** One step from a state: the next state (the previous one consumed) and what the step did. */
  readonly step: (state: S) => Effect.Effect<{ readonly state: S; readonly done: TuneStep }, E, R>
  /** The snapshot of a state. */
  readonly snapshot: (state: S) => Effect.Effect<TunerSnapshot>
}

/**
 * A session starting from the state `acquire` makes (run last, so nothing it allocates can be
 * left behind by a failure before the session owns it; it may hold more in the session's scope).
 */
export const openWeightsSession = <S extends WeightsState, E, R, EA>(
  spec: WeightsSessionSpec<S, E, R>,
  acquire: Effect.Effect<S, EA, Scope.Scope>
): Effect.Effect<TunerSession<E, R>, EA, Scope.Scope> =>
  Effect.gen(function*() {
    let state = yield* acquire
    let handedOver = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        disposeAdamW(state.optimizer)
        if (!handedOver) disposeParams(spec.shape, state.params)
      })
    )
    return {
      steps: spec.steps,
      stepsDone: () => spec.stepsDone(state),
      step: Effect.uninterruptible(
        Effect.suspend(() => spec.step(state)).pipe(Effect.map((next) => {
          state = next.state
          return next.done
        }))
      ),
      current: () => ({ config: spec.shape, params: state.params }),
      snapshot: Effect.suspend(() => spec.snapshot(state)),
      finish: Effect.sync(() => {
        handedOver = true
        return { config: spec.shape, params: state.params }
      })
    }
  })
