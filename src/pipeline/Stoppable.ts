/**
 * Long work that a signal stops at a step boundary instead of cutting off: `simmer run`,
 * `train-base` and a daemon's run process all run this way, so SIGINT/SIGTERM (through
 * NodeRuntime, the interruption of the calling fiber) make the work save and end by itself.
 */
import { Deferred, Effect, Fiber } from "effect"

/**
 * Runs `work` so that interrupting this fiber asks it to stop at its next step boundary (its
 * `stopRequested` turns true) and waits for it to end.
 */
export const stoppable = <A, E, R>(work: (stopRequested: Effect.Effect<boolean>) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const stop = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkDetach(work(Deferred.isDone(stop)))
    return yield* Fiber.join(fiber).pipe(
      Effect.onInterrupt(() => Deferred.succeed(stop, undefined).pipe(Effect.andThen(Fiber.await(fiber))))
    )
  })
