/**
 * Models as scoped resources. The loop holds every model it makes (a pruned candidate, a tuned
 * one, an accepted checkpoint loaded for a resume) in a scope of its own inside the run's scope:
 * `release` frees a superseded or rolled-back model at once, and whatever is still held when
 * the run ends — finished, stopped, failed or interrupted — is freed when the run's scope
 * closes, by the runtime rather than by hand.
 */
import type * as tf from "@tensorflow/tfjs"
import { Effect, Exit, Scope } from "effect"
import type { Model } from "../model/Model.ts"
import { paramTensors } from "../model/Params.ts"

export interface HeldModel extends Model {
  /** Frees the model's tensors now (idempotent). */
  readonly release: Effect.Effect<void>
}

/** Tensors of a held model that another model took over (replaceModel), which its release must leave alone. */
const handedOn = new WeakMap<HeldModel, Set<tf.Tensor>>()

/** Makes a model and holds it in a new scope inside the current one; nothing leaks in between. */
export const acquireModel = <E, R>(make: Effect.Effect<Model, E, R>): Effect.Effect<HeldModel, E, R | Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const scope = yield* Scope.fork(yield* Effect.scope)
      const model = yield* restore(make).pipe(Effect.onError(() => Scope.close(scope, Exit.void)))
      const held: HeldModel = { ...model, release: Scope.close(scope, Exit.void) }
      const kept = new Set<tf.Tensor>()
      handedOn.set(held, kept)
      yield* Scope.addFinalizer(scope, Effect.sync(() => {
        for (const t of paramTensors(model.config, model.params)) if (!kept.has(t)) t.dispose()
      }))
      return held
    })
  )

/** Holds a model that already exists (its tensors are this holder's to free from now on). */
export const holdModel = (model: Model): Effect.Effect<HeldModel, never, Scope.Scope> => acquireModel(Effect.succeed(model))

/**
 * Holds `next`, made from `previous` by a stage that may reuse some of its tensors (a user's
 * stage that rewrites a few weights), and frees what `next` no longer uses.
 */
export const replaceModel = (previous: HeldModel, next: Model): Effect.Effect<HeldModel, never, Scope.Scope> =>
  Effect.gen(function*() {
    if (next === previous) return previous
    const held = yield* holdModel(next)
    const kept = handedOn.get(previous)
    for (const t of paramTensors(next.config, next.params)) kept?.add(t)
    yield* previous.release
    return held
  })

/** A model someone else owns (the run's original), seen through the same interface: `release` does nothing. */
export const borrowModel = (model: Model): HeldModel => ({ ...model, release: Effect.void })
