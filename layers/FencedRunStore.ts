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
 * moved (whole: checkpoints and pointers are renamed into place, an event line is one append),
 * and the runner's next write is refused. Closing it fully needs a store with conditional writes (an object store's
 * if-match), which this interface leaves room for.
 */
import { Effect, Layer } from "effect"
import type { FenceToken } from "../src/services/RunFence.ts"
import { RunFence } from "../src/services/RunFence.ts"
import { RunStore } from "../src/services/RunStore.ts"
import { RunStoreLive } from "./RunStore.ts"

/** Fences any RunStore: every write of `inner` is checked against `token` first. */
export const fenceRunStore = (token: FenceToken) => <E>(inner: Layer.Layer<RunStore, E>): Layer.Layer<RunStore, E, RunFence> =>
  Layer.effect(
    RunStore,
    Effect.gen(function*() {
      const store = yield* RunStore
      const fence = yield* RunFence
      const guard = fence.check(token).pipe(Effect.orDie)
      const guarded = <A, E2, R>(write: Effect.Effect<A, E2, R>) => Effect.andThen(guard, write)
      return RunStore.of({
        ...store,
        appendEvent: (event) => guarded(store.appendEvent(event)),
        saveStage: (name, content) => guarded(store.saveStage(name, content)),
        markAccepted: (pointer) => guarded(store.markAccepted(pointer)),
        saveResume: (state) => guarded(store.saveResume(state)),
        clearResume: guarded(store.clearResume),
        recordResult: (strategy, result) => guarded(store.recordResult(strategy, result))
      })
    })
  ).pipe(Layer.provide(inner))

/**
 * The run folder `dir` on the shared directory, fenced by `token`, without its lock file (which
 * cannot tell whether another host's process lives). Another backend (an object store) would be
 * fenced the same way, with `fenceRunStore`.
 */
export const FencedRunStore = (dir: string, token: FenceToken) => fenceRunStore(token)(RunStoreLive(dir, { lock: "none" }))
