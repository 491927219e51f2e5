/**
 * A daemon's run in its own process: the other end of ProcessRunExecutor. Given the daemon's
 * `Start` (in its environment), it reads the job from the run folder, runs it as `simmer run` does — the same
 * stream, store and report — and sends every update to the daemon as it happens. SIGTERM (the
 * daemon's stop, or the daemon gone: ParentWatch) stops it at the next step boundary with its
 * state saved. It ends with the exit code `simmer run` would: 0 finished, 75 stopped, 4 failed
 * (its message sent first), so the daemon tells a run that ended from a process that died.
 * The run's layers come from `Start`: the backend and memory share the daemon gives it, its
 * gradient workers, its run folder's store (fenced on a cluster runner) and its reward models.
 */
import { Effect, Layer, Redacted, Schedule, Schema, Stream } from "effect"
import { postgresLayer } from "../cluster/ClusterLayer.ts"
import { resolveInference } from "../compute/Inference.ts"
import { RunLocked } from "../io/RunFolder.ts"
import { recordInRunInfo } from "../io/RunInfo.ts"
import { runUpdates } from "../pipeline/Run.ts"
import { failureMessage } from "../pipeline/RunFailure.ts"
import { writeReport } from "../report/WriteReport.ts"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { Gradients } from "../services/Gradients.ts"
import type { RunId } from "../services/JobStore.ts"
import { RewardModel } from "../services/RewardModel.ts"
import { RunFence } from "../services/RunFence.ts"
import { RunStore } from "../services/RunStore.ts"
import { FromRunProcess, type StartRun } from "./RunProcessProtocol.ts"
import { readRunJob } from "./RunJob.ts"

const GIB = 2 ** 30

/** The backend and memory share the daemon gives the run, its gradient workers, and the datasets. */
const platformOf = (start: StartRun) =>
  Layer.provideMerge(
    Layer.mergeAll(DeviceMemory.layer(start.memoryBytes / GIB), Gradients.layerFor(start.workers), Datasets.layer),
    Compute.layer(start.backend)
  )

/** The run folder's store: locked on this host, or, on a cluster runner, fenced in the cluster's Postgres. */
const storeOf = (start: StartRun) => {
  if (start.fence === undefined) return RunStore.layerFolder(start.dir)
  const { url, ...token } = start.fence
  return RunStore.layerFenced(start.dir, token).pipe(
    Layer.provide(RunFence.layerPostgres),
    Layer.provide(postgresLayer({ url: Redacted.make(url) }))
  )
}

/** How the process ends, as its exit code says. */
export type RunProcessEnd = "finished" | "stopped" | "failed"

const encode = Schema.encodeSync(FromRunProcess)

/** Sends one message to the daemon and waits until it is written, so that updates keep their order and none is lost at exit. */
const send = (message: FromRunProcess) =>
  Effect.callback<void>((resume) => {
    if (process.send === undefined || !process.connected) return resume(Effect.void)
    process.send(encode(message), undefined, {}, () => resume(Effect.void))
  })

/**
 * The run, stopped at its next step boundary when `stopRequested` says so. Fails with the run's
 * message after sending it.
 */
export const runProcess = (start: StartRun, stopRequested: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    yield* send({ _tag: "Ready" })
    const job = yield* readRunJob(start.id as RunId, start.dir)
    let stopped = false
    let waiting = false
    const work = Effect.gen(function*() {
      const compute = yield* Compute
      const inference = yield* resolveInference(undefined, compute.backend)
      yield* recordInRunInfo(job.dir, { backend: compute.description, inference })
      if (start.restartNote !== undefined) {
        const restarted = yield* logRestart(start.restartNote)
        if (restarted !== undefined) yield* send({ _tag: "Update", update: { _tag: "Event", event: restarted } })
      }
      yield* runUpdates({ plan: job.plan, modelPath: job.modelPath, stopRequested, inference }).pipe(
        Stream.runForEach((update) => {
          if (update._tag === "Event" && update.event.phase === "interrupted") stopped = true
          return send({ _tag: "Update", update })
        })
      )
    }).pipe(
      Effect.provide(Layer.merge(storeOf(start), RewardModel.layer(job.plan.reward ?? []))),
      // The process before this one may still be saving (its daemon died: ParentWatch stops it): wait for its lock.
      Effect.tapError((e) => (isRunLocked(e) && !waiting ? Effect.sync(() => (waiting = true)).pipe(Effect.andThen(Effect.logInfo(`run ${job.id}: ${e.message} Waiting for it to let go.`))) : Effect.void)),
      Effect.retry({ while: isRunLocked, schedule: Schedule.spaced("1 second"), times: 120 }),
      Effect.provide(platformOf(start))
    )
    const ran = yield* Effect.exit(work)
    // The report describes the run as far as it went, as `simmer run` leaves it.
    yield* writeReport(job.dir).pipe(Effect.ignore)
    if (ran._tag === "Failure") {
      const message = failureMessage(ran.cause)
      yield* send({ _tag: "Failed", message })
      return "failed" satisfies RunProcessEnd
    }
    return (stopped ? "stopped" : "finished") satisfies RunProcessEnd
  }).pipe(
    // Whatever ended it before the run started (an unreadable folder) is the run's failure too.
    Effect.catchCause((cause) => Effect.as(send({ _tag: "Failed", message: failureMessage(cause) }), "failed" as RunProcessEnd))
  )

const isRunLocked = (e: unknown): e is RunLocked => e instanceof RunLocked

/** Says in the run's log that its previous process died where the run was (its last event), before it continues. */
const logRestart = (message: string) =>
  Effect.gen(function*() {
    const store = yield* RunStore
    const last = (yield* store.events).at(-1)
    if (last === undefined) return undefined
    return yield* store.appendEvent({ strategy: last.strategy, iteration: last.iteration, attempt: last.attempt, phase: "interrupted", parameters: last.parameters, message })
  })
