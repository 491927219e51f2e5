/**
 * A RunStore whose every write is fenced: before an event is appended, a checkpoint or the
 * resume state is written, a pointer moved or a result recorded, the runner's fencing token is
 * checked against the run's current epoch (services/RunFence.ts). A runner the run has moved
 * away from — paused, partitioned, presumed dead — is refused before it touches the folder.
 *
 * A refused write ends the run as a defect carrying `FencedOut`: no stage of the pipeline can
 * or should handle it (the run is someone else's now), and the store's interface keeps its
 * narrow error types. Reads are not fenced. The check comes right before each write, so the
 * one window left is a runner paused *inside* a write: that single write may land after the run
 * moved (whole, since every write is a rename into place), and the runner's next write is
 * refused. Closing it fully needs a store with conditional writes (an object store's
 * if-match), which this interface leaves room for.
 */
import { Effect, Layer } from "effect"
import type { FenceToken } from "../src/services/RunFence.ts"
import { RunFence } from "../src/services/RunFence.ts"
import { RunStore } from "../src/services/RunStore.ts"
import { RunStoreLive } from "./RunStore.ts"

export const FencedRunStore = (dir: string, token: FenceToken) =>
  Layer.effect(
    RunStore,
    Effect.gen(function*() {
      const inner = yield* RunStore
      const fence = yield* RunFence
      const guard = fence.check(token).pipe(Effect.orDie)
      const guarded = <A, E, R>(write: Effect.Effect<A, E, R>) => Effect.andThen(guard, write)
      return RunStore.of({
        ...inner,
        appendEvent: (event) => guarded(inner.appendEvent(event)),
        saveStage: (name, content) => guarded(inner.saveStage(name, content)),
        markAccepted: (pointer) => guarded(inner.markAccepted(pointer)),
        saveResume: (state) => guarded(inner.saveResume(state)),
        clearResume: guarded(inner.clearResume),
        recordResult: (strategy, result) => guarded(inner.recordResult(strategy, result))
      })
    })
  ).pipe(Layer.provide(RunStoreLive(dir, { lock: "none" })))
