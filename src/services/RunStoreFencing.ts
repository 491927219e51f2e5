/**
 * A RunStore whose every write is fenced: before an event is appended, a checkpoint or the
 * resume state is written, a pointer moved or a result recorded, the runner's fencing token is
 * checked against the run's current epoch (RunFence.ts). A runner the run has moved away from —
 * paused, partitioned, presumed dead — is refused before it touches the folder.
 *
 * A refused write ends the run as a defect carrying `FencedOut`: no stage of the pipeline can
 * or should handle it (the run is someone else's now), and the store's interface keeps its
 * narrow error types. Reads are not fenced. The check comes right before each write, so the
 * one window left is a runner paused *inside* a write: that single write may land after the run
 * moved (whole: checkpoints and pointers are renamed into place, an event line is one append),
 * and the runner's next write is refused. Closing it fully needs a store with conditional writes (an object store's
 * if-match), which this interface leaves room for.
 */
import { Effect } from "effect"
// Types only: RunStore.ts builds its fenced layer from this file.
import type { FenceToken, RunFence } from "./RunFence.ts"
import type { RunStore } from "./RunStore.ts"

/** Fences any RunStore: every write of `store` is checked against `token` first. */
export const fenceWrites = (store: RunStore["Service"], fence: RunFence["Service"], token: FenceToken): RunStore["Service"] => {
  const guard = fence.check(token).pipe(Effect.orDie)
  const guarded = <A, E, R>(write: Effect.Effect<A, E, R>) => Effect.andThen(guard, write)
  return {
    ...store,
    appendEvent: (event) => guarded(store.appendEvent(event)),
    saveStage: (name, content) => guarded(store.saveStage(name, content)),
    markAccepted: (pointer) => guarded(store.markAccepted(pointer)),
    saveResume: (state) => guarded(store.saveResume(state)),
    clearResume: guarded(store.clearResume),
    recordResult: (strategy, result) => guarded(store.recordResult(strategy, result))
  }
}
