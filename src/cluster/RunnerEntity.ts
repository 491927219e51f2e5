/**
 * The runner's side of the run entity: what a machine does when the cluster hands it a run.
 * It reads the job from the run folder on the shared directory, takes the run's fencing token
 * (a newer epoch than any runner before it), waits until its DeviceMemory admits the run beside
 * the ones it already runs (the executor's reservation), and runs it in a process of its own
 * (ProcessRunExecutor) whose run store checks the token before every write. The reply is the
 * run's outcome.
 *
 * When the runner shuts down (SIGTERM from a spot reclaim), the cluster interrupts the entity:
 * the run is asked to stop at its next step boundary and save its resume state, within the grace
 * period, and the message stays unanswered, so the next owner of the shard continues the run. A
 * runner that finds itself fenced out (it was paused while the run moved) does not answer
 * either: it waits for the cluster to take the shard away from it.
 */
import { join } from "node:path"
import { Context, Deferred, Duration, Effect, Layer, Schedule } from "effect"
import type { Layer as LayerType } from "effect"
import { Entity } from "effect/cluster"
import type { Compute } from "../services/Compute.ts"
import type { DeviceMemory } from "../services/DeviceMemory.ts"
import type { RunId } from "../services/JobStore.ts"
import { type FenceToken, RunFence } from "../services/RunFence.ts"
import { type RunHandle, RunExecutor, type RunOutcome } from "../server/RunExecutor.ts"
import { readRunJob } from "../server/RunJob.ts"
import { RunEntity } from "./RunEntity.ts"

export interface RunnerSettings {
  /** The shared directory's `runs` folder, where every run's folder is. */
  readonly runsDir: string
  /** This runner's name in the fence (its cluster address). */
  readonly holder: string
  /** How long a shutdown waits for a run to reach a step boundary and save. */
  readonly graceSeconds: number
}

export interface RunnerLayers {
  /** Runs a run in a process of its own (ProcessRunExecutor), every write of it checked against `token`. */
  readonly executor: (token: FenceToken) => LayerType.Layer<RunExecutor, never, DeviceMemory | Compute>
}

/** The run an entity executes; `asked` remembers a stop or kill that came before it could start. */
interface Slot {
  readonly done: Deferred.Deferred<RunOutcome>
  handle: RunHandle | undefined
  asked: "stop" | "kill" | undefined
}

export const runnerEntityLayer = (settings: RunnerSettings, layers: RunnerLayers) =>
  RunEntity.toLayer(
    Effect.gen(function*() {
      const address = yield* Entity.CurrentAddress
      const fence = yield* RunFence
      const context = yield* Effect.context<DeviceMemory | Compute>()
      let current: Slot | undefined

      const failed = (message: string): RunOutcome => ({ _tag: "Failed", message })

      const runHere = (run: string, slot: Slot) =>
        Effect.scoped(Effect.gen(function*() {
          if (run !== address.entityId) return failed(`The run entity ${address.entityId} was sent run ${run}.`)
          const dir = join(settings.runsDir, run)
          const job = yield* readRunJob(run as RunId, dir).pipe(Effect.result)
          if (job._tag === "Failure") return failed(`Run ${run} cannot start on ${settings.holder}: ${job.failure.message}`)
          const token = yield* fence.acquire(run, settings.holder)
          yield* Effect.logInfo(`run ${run}: taken over by ${settings.holder} (fencing epoch ${token.epoch})`)
          // Built in this run's own scope and memo map: the run belongs to this request, not to
          // the process's layers (which a shutdown closes first, newest first).
          const executor = yield* Layer.buildWithMemoMap(
            layers.executor(token),
            Layer.makeMemoMapUnsafe(),
            yield* Effect.scope
          ).pipe(Effect.map((built) => Context.get(built, RunExecutor)), Effect.provide(context))
          let waiting = false
          const handle = yield* executor.start(job.success, () => Effect.void).pipe(
            Effect.tapError((e) =>
              e._tag === "NoRoomYet" && !waiting
                ? Effect.andThen(Effect.sync(() => (waiting = true)), Effect.logInfo(`run ${run} waits for room on ${settings.holder}: ${e.message}`))
                : Effect.void
            ),
            // A run cancelled while it waits for room ends without having started.
            Effect.retry({ while: (e) => e._tag === "NoRoomYet" && slot.asked === undefined, schedule: Schedule.spaced("1 second") }),
            Effect.result
          )
          if (handle._tag === "Failure") {
            if (handle.failure._tag === "NoRoomYet" && slot.asked !== undefined) return { _tag: slot.asked === "stop" ? "Stopped" : "Killed" } as const
            return failed(handle.failure.message)
          }
          slot.handle = handle.success
          if (slot.asked !== undefined) yield* slot.asked === "stop" ? handle.success.stop : handle.success.kill
          const outcome = yield* handle.success.outcome.pipe(
            // The run leaves this runner (shutdown, rebalance): stop at a step boundary and save, within the grace period.
            Effect.onInterrupt(() =>
              Effect.gen(function*() {
                yield* Effect.logInfo(`run ${run} leaves this runner (it stops, or the run's shard moves): saving at the next step boundary to continue elsewhere`)
                yield* handle.success.stop
                const saved = yield* handle.success.outcome.pipe(Effect.timeoutOption(Duration.seconds(settings.graceSeconds)))
                if (saved._tag === "None") yield* handle.success.kill
                // A runner that lost the run while paused is refused here, saving into it.
                else if (saved.value._tag === "Failed") yield* Effect.logWarning(`run ${run}: ${saved.value.message}`)
              })
            )
          )
          if (outcome._tag === "Failed") {
            const moved = yield* fence.check(token).pipe(Effect.flip, Effect.option)
            if (moved._tag === "Some" && moved.value._tag === "FencedOut") {
              // Not ours any more: answering would end the run its new owner is running.
              yield* Effect.logWarning(`run ${run}: ${moved.value.message}`)
              return yield* Effect.never
            }
          }
          return outcome
        }))

      const execute = (run: string) =>
        Effect.gen(function*() {
          // The same run sent again (the API restarted): wait for the one already going.
          if (current !== undefined) return yield* Deferred.await(current.done)
          const slot: Slot = { done: yield* Deferred.make<RunOutcome>(), handle: undefined, asked: undefined }
          current = slot
          return yield* runHere(run, slot).pipe(
            Effect.catchTag("FenceUnavailable", (e) => Effect.succeed(failed(e.message))),
            Effect.tap((outcome) => Deferred.succeed(slot.done, outcome)),
            Effect.ensuring(Effect.sync(() => {
              if (current === slot) current = undefined
            }))
          )
        })

      /** Passes a stop or kill on to the run; one waiting for room takes it as it starts. */
      const ask = (what: "stop" | "kill") =>
        Effect.suspend(() => {
          if (current === undefined) return Effect.succeed(false)
          if (current.handle === undefined) {
            current.asked = what
            return Effect.succeed(true)
          }
          return Effect.as(what === "stop" ? current.handle.stop : current.handle.kill, true)
        })

      return RunEntity.of({
        Execute: ({ payload }) => execute(payload.run),
        Stop: () => ask("stop"),
        Kill: () => ask("kill")
      })
    }),
    { concurrency: "unbounded" }
  )
