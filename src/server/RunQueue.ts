/**
 * The daemon's queue and the life of every run in it. Submitting writes the run folder (in the
 * `simmer run` format) and then the job-store row, so a crash in between leaves a folder the
 * next start adopts, never a row without its folder. One dispatcher takes queued runs in order —
 * runs stopped by a shutdown first, then priority, then submission — and starts each as soon as
 * the executor finds room for it (DeviceMemory) within `concurrency`. Cancelling asks a run to
 * stop at its next step boundary (status `cancelled`); a shutdown asks every run the same and
 * waits up to the grace period (status `interrupted`, continued first on the next start).
 *
 * On start, the store and the folders are reconciled: runs the last process left `running`
 * (kill -9) or `interrupted` go back to the front of the queue, a folder without a row is
 * adopted, a row whose folder is gone fails saying so, and half-deleted folders are removed.
 */
import { randomBytes } from "node:crypto"
import { readdir, readFile, rename, rm } from "node:fs/promises"
import { join } from "node:path"
import { Clock, Context, Duration, Effect, Fiber, Layer, Option, Queue, Schema } from "effect"
import { pathExists } from "../io/AtomicWrite.ts"
import { describeCause, errnoCode, type FileSystemError } from "../io/Errors.ts"
import { createRunFolder, eventsFileName, planFileName } from "../io/RunFolder.ts"
import { simmerVersion } from "../io/RunInfo.ts"
import type { RunUpdate } from "../pipeline/RunUpdate.ts"
import { readEvents } from "../io/EventLog.ts"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { JobStore, type JobStoreError, type LoggedProgress, RunId, type RunRecord, type RunStatus } from "../services/JobStore.ts"
import { RunDetail, RunNotFound, RunStateConflict, type RunView, ServerFailure, ShuttingDown } from "./Api.ts"
import { DaemonConfig, runsDirOf } from "./DaemonConfig.ts"
import { makeTuningMeter, progressAfter, progressOfLog, type TuningMeter } from "./Progress.ts"
import { type RunHandle, RunExecutor } from "./RunExecutor.ts"
import { readRunJob } from "./RunJob.ts"
import { RunHub } from "./RunHub.ts"
import { admitPlan } from "./Submission.ts"

export interface SubmitOptions {
  readonly name?: string | undefined
  readonly priority?: number | undefined
  readonly folder?: string | undefined
}

export interface ListQuery {
  readonly status?: RunStatus | undefined
  readonly limit?: number | undefined
  readonly offset?: number | undefined
}

const serverFailure = (e: { readonly message: string }) => new ServerFailure({ message: e.message })
const notFound = (id: string) => new RunNotFound({ message: `There is no run ${id} on this daemon (\`simmer runs\` lists them).` })

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/** A fresh run id: the submission time (UTC) and six random hex digits. */
export const newRunId = (now: Date): RunId =>
  Schema.decodeSync(RunId)(
    `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}-${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${
      pad(now.getUTCSeconds())
    }-${randomBytes(3).toString("hex")}`
  )

const isRunId = Schema.is(RunId)

/** A running run: how to stop it, why it was asked to, and its live progress. */
interface Running {
  readonly handle: RunHandle
  stopReason: "cancel" | "shutdown" | undefined
}

/** Per-run live state, kept while a run runs. */
interface Live {
  original: number | undefined
  logged: LoggedProgress | undefined
  readonly meter: TuningMeter
}

export class RunQueue extends Context.Service<RunQueue, {
  readonly submit: (text: string, options: SubmitOptions) => Effect.Effect<RunView, Effect.Error<ReturnType<typeof admitPlan>> | ShuttingDown | ServerFailure>
  readonly get: (id: RunId) => Effect.Effect<RunDetail, RunNotFound | ServerFailure>
  readonly record: (id: RunId) => Effect.Effect<RunRecord, RunNotFound | ServerFailure>
  readonly list: (query: ListQuery) => Effect.Effect<{ readonly runs: ReadonlyArray<RunView>; readonly total: number; readonly offset: number }, ServerFailure>
  readonly cancel: (id: RunId) => Effect.Effect<RunView, RunNotFound | RunStateConflict | ServerFailure>
  readonly resume: (id: RunId) => Effect.Effect<RunView, RunNotFound | RunStateConflict | ShuttingDown | ServerFailure>
  readonly remove: (id: RunId) => Effect.Effect<void, RunNotFound | RunStateConflict | ServerFailure>
  /** The run folder of `id`. */
  readonly folderOf: (id: RunId) => string
  /** Counts by status, and what the running runs are doing, for /metrics and /readyz. */
  readonly counts: Effect.Effect<Readonly<Record<RunStatus, number>>, ServerFailure>
  readonly runningProgress: Effect.Effect<ReadonlyArray<{ readonly id: RunId; readonly live: RunView["progress"] }>>
  /** Seconds the last evaluation of any run took. */
  readonly lastEvaluationSeconds: Effect.Effect<number | undefined>
  /** True once the queue has been recovered and the dispatcher runs; false again while draining. */
  readonly ready: Effect.Effect<boolean>
  /** Stops accepting work, asks every running run to stop and save, and waits up to the grace period. */
  readonly drain: Effect.Effect<void>
}>()("simmer/RunQueue") {}

export const RunQueueLive: Layer.Layer<
  RunQueue,
  JobStoreError | FileSystemError,
  JobStore | RunExecutor | RunHub | DaemonConfig | DeviceMemory | Compute | Datasets
> = Layer.effect(
  RunQueue,
  Effect.gen(function*() {
    const store = yield* JobStore
    const executor = yield* RunExecutor
    const hub = yield* RunHub
    const settings = yield* DaemonConfig
    const memory = yield* DeviceMemory
    const compute = yield* Compute
    const datasets = yield* Datasets
    const runsDir = runsDirOf(settings)
    const folderOf = (id: RunId) => join(runsDir, id)

    const running = new Map<RunId, Running>()
    const live = new Map<RunId, Live>()
    let draining = false
    let ready = false
    let lastEvaluationSeconds: number | undefined
    // Wakes the dispatcher: a submission, a resumed run, a run that ended (its memory is free).
    const pokes = yield* Queue.dropping<void>(1)
    const poke = Queue.offer(pokes, undefined).pipe(Effect.asVoid)

    const publishStatus = (id: RunId, status: RunStatus, error?: string) =>
      hub.publish({ id, item: { _tag: "Status", status, ...(error !== undefined ? { error } : {}) } })

    const viewOf = (record: RunRecord): RunView => {
      const { seq: _seq, first: _first, progress: logged, ...view } = record
      const meter = record.status === "running" ? live.get(record.id)?.meter : undefined
      const tuning = meter?.current
      const progress = logged !== undefined
        ? { ...logged, tuningTokens: logged.tuningTokens + (meter?.tokens ?? 0), ...(tuning !== undefined ? { tuning } : {}) }
        : undefined
      return { ...view, ...(progress !== undefined ? { progress } : {}) }
    }

    const recordOf = (id: RunId) =>
      store.get(id).pipe(Effect.mapError(serverFailure), Effect.flatMap(Option.match({ onNone: () => Effect.fail(notFound(id)), onSome: Effect.succeed })))

    const now = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms).toISOString()))

    // -------------------------------------------------------------------------------------
    // Recovery

    const recover = Effect.gen(function*() {
      const entries = yield* Effect.promise(() => readdir(runsDir).catch(() => [] as Array<string>))
      // Half-deleted runs, and run folders a crash left half-written (never acknowledged).
      for (const entry of entries.filter((e) => e.startsWith(".deleted-") || (e.startsWith(".") && e.includes(".partial-")))) {
        yield* Effect.promise(() => rm(join(runsDir, entry), { recursive: true, force: true }))
      }
      const records = yield* store.all
      const known = new Set<string>(records.map((r) => r.id))
      // A folder written just before a crash, its row never: the submission is not lost.
      for (const entry of entries.filter((e) => isRunId(e) && !known.has(e))) {
        const id = entry as RunId
        if (!(yield* pathExists(join(folderOf(id), planFileName)))) continue
        yield* store.insert({ id, name: id, priority: 0, status: "queued" })
        yield* Effect.logInfo(`adopted run ${id}: its folder was written but not its row (the daemon stopped in between)`)
      }
      for (const record of records) {
        if (!(yield* pathExists(join(folderOf(record.id), planFileName)))) {
          if (record.status !== "failed") {
            yield* store.setStatus(record.id, { status: "failed", error: `The run folder ${folderOf(record.id)} is gone.` })
          }
          continue
        }
        if (record.status === "running" || record.status === "interrupted") {
          yield* store.setStatus(record.id, { status: "queued", first: true })
          yield* Effect.logInfo(`run ${record.id} was ${record.status === "running" ? "running when the daemon stopped" : "interrupted"}: queued to continue first`)
        }
      }
    })

    // -------------------------------------------------------------------------------------
    // Running one run

    const jobOf = (record: RunRecord) => readRunJob(record.id, folderOf(record.id))

    const onUpdate = (id: RunId, state: Live) => (update: RunUpdate) =>
      Effect.gen(function*() {
        if (update._tag === "Step") {
          state.meter.step(update.progress)
        } else {
          state.meter.reset()
          state.original ??= update.event.parameters.nonEmbedding
          state.logged = progressAfter(state.logged, update.event, state.original)
          if (update.event.phase === "evaluated" && update.event.timings?.evaluate !== undefined) lastEvaluationSeconds = update.event.timings.evaluate
          yield* store.setProgress(id, state.logged).pipe(Effect.catch((e) => Effect.logWarning(e.message)))
        }
        yield* hub.publish({ id, item: update })
      })

    /** Records how a run ended and frees its place. */
    const settle = (id: RunId, entry: Running) =>
      Effect.gen(function*() {
        const outcome = yield* entry.handle.outcome
        const endedAt = yield* now
        const change = outcome._tag === "Finished"
          ? { status: "finished" as const, endedAt }
          : outcome._tag === "Failed"
          ? { status: "failed" as const, endedAt, error: outcome.message }
          : entry.stopReason === "cancel"
          ? { status: "cancelled" as const, endedAt }
          : { status: "interrupted" as const, endedAt, first: true }
        yield* store.setStatus(id, change).pipe(Effect.catch((e) => Effect.logError(e.message)))
        running.delete(id)
        live.delete(id)
        if (outcome._tag === "Failed") yield* Effect.logWarning(`run ${id} failed: ${outcome.message}`)
        yield* publishStatus(id, change.status, "error" in change ? change.error : undefined)
        yield* poke
      })

    const fail = (record: RunRecord, message: string) =>
      Effect.gen(function*() {
        yield* store.setStatus(record.id, { status: "failed", endedAt: yield* now, error: message })
        yield* publishStatus(record.id, "failed", message)
      })

    /** Starts the next queued run if there is room; false when the dispatcher should wait for a poke. */
    const startNext = Effect.gen(function*() {
      if (draining || running.size >= settings.concurrency) return false
      const next = yield* store.nextQueued([])
      if (Option.isNone(next)) return false
      const record = next.value
      const job = yield* jobOf(record).pipe(Effect.result)
      if (job._tag === "Failure") {
        yield* fail(record, job.failure.message)
        return true
      }
      const events = yield* readEvents(join(job.success.dir, eventsFileName)).pipe(Effect.orElseSucceed(() => []))
      const state: Live = { original: events[0]?.parameters.nonEmbedding, logged: progressOfLog(events), meter: makeTuningMeter() }
      const started = yield* executor.start(job.success, onUpdate(record.id, state)).pipe(Effect.result)
      if (started._tag === "Failure") {
        if (started.failure._tag === "NoRoomYet" && running.size > 0) return false
        yield* fail(record, started.failure.message)
        return true
      }
      const handle = started.success
      // A cancel or delete may have taken the run while it was being started.
      if (!(yield* store.transition(record.id, ["queued"], { status: "running", startedAt: yield* now }))) {
        yield* handle.kill
        return true
      }
      live.set(record.id, state)
      const entry: Running = { handle, stopReason: undefined }
      running.set(record.id, entry)
      yield* publishStatus(record.id, "running")
      yield* Effect.forkDetach(settle(record.id, entry))
      return true
    })

    const dispatcher = Effect.gen(function*() {
      while (!draining) {
        const startedOne = yield* startNext.pipe(
          Effect.catch((e) => Effect.andThen(Effect.logError(`the queue could not start a run: ${e.message}`), Effect.succeed(false)))
        )
        if (!startedOne) yield* Queue.take(pokes)
      }
    })

    // -------------------------------------------------------------------------------------
    // Requests

    const submit = (text: string, options: SubmitOptions) =>
      Effect.gen(function*() {
        if (draining) return yield* new ShuttingDown({ message: "The daemon is shutting down and accepts no new runs; submit again once it is back." })
        const { plan, modelPath, pins } = yield* admitPlan(text, {
          folder: options.folder ?? settings.dataDir,
          allowedRoots: settings.allowedRoots,
          backend: compute.backend,
          memory
        }).pipe(Effect.provideService(Datasets, datasets))
        const id = newRunId(new Date(yield* Clock.currentTimeMillis))
        // The folder first, then the row: a crash in between leaves a folder the next start adopts.
        yield* createRunFolder(folderOf(id), text, {
          modelPath,
          createdAt: new Date().toISOString(),
          planFolder: options.folder ?? settings.dataDir,
          simmerVersion,
          ...(pins.length > 0 ? { hub: pins } : {})
        }).pipe(Effect.mapError(serverFailure))
        const record = yield* store.insert({ id, name: options.name ?? `${plan.model === "base" ? "base" : modelPath.split("/").at(-1)} run`, priority: options.priority ?? 0 })
          .pipe(Effect.mapError(serverFailure))
        yield* publishStatus(id, "queued")
        yield* poke
        return viewOf(record)
      })

    const cancel = (id: RunId) =>
      Effect.gen(function*() {
        const record = yield* recordOf(id)
        const entry = running.get(id)
        if (entry !== undefined) {
          entry.stopReason = "cancel"
          yield* entry.handle.stop
          return viewOf(record)
        }
        if (record.status === "queued" && (yield* store.transition(id, ["queued"], { status: "cancelled", endedAt: yield* now }).pipe(Effect.mapError(serverFailure)))) {
          yield* publishStatus(id, "cancelled")
          return viewOf(yield* recordOf(id))
        }
        return yield* new RunStateConflict({
          status: record.status,
          message: `Run ${id} is ${record.status}; only a queued or running run can be cancelled.`
        })
      })

    const resume = (id: RunId) =>
      Effect.gen(function*() {
        if (draining) return yield* new ShuttingDown({ message: "The daemon is shutting down; resume the run once it is back." })
        const record = yield* recordOf(id)
        const from: ReadonlyArray<RunStatus> = ["cancelled", "interrupted", "failed"]
        if (!(yield* store.transition(id, from, { status: "queued", first: false }).pipe(Effect.mapError(serverFailure)))) {
          return yield* new RunStateConflict({
            status: record.status,
            message: `Run ${id} is ${record.status}; only a cancelled, interrupted or failed run can be resumed.`
          })
        }
        yield* publishStatus(id, "queued")
        yield* poke
        return viewOf(yield* recordOf(id))
      })

    const remove = (id: RunId) =>
      Effect.gen(function*() {
        const record = yield* recordOf(id)
        // A queued run is taken off the queue first, so the dispatcher cannot start it meanwhile.
        const takeable: ReadonlyArray<RunStatus> = ["queued", "cancelled", "interrupted", "failed", "finished"]
        if (running.has(id) || !(yield* store.transition(id, takeable, { status: "cancelled" }).pipe(Effect.mapError(serverFailure)))) {
          return yield* new RunStateConflict({ status: record.status, message: `Run ${id} is running; cancel it first, then delete it.` })
        }
        // Out of sight first (one rename), then the row, then the bytes: a crash leaves a
        // `.deleted-` folder that the next start removes, never a run that comes back.
        const hidden = join(runsDir, `.deleted-${id}`)
        yield* Effect.tryPromise({
          try: () => rename(folderOf(id), hidden).catch((e) => (errnoCode(e) === "ENOENT" ? undefined : Promise.reject(e))),
          catch: (e) => new ServerFailure({ message: `Cannot delete the run folder ${folderOf(id)}: ${describeCause(e)}.` })
        })
        yield* store.remove(id).pipe(Effect.mapError(serverFailure))
        live.delete(id)
        yield* Effect.promise(() => rm(hidden, { recursive: true, force: true }))
      })

    const drain = Effect.gen(function*() {
      if (draining) return
      draining = true
      ready = false
      yield* poke
      if (running.size > 0) yield* Effect.logInfo(`stopping ${running.size} run(s) at their next step boundary (grace ${settings.graceSeconds} s)`)
      const deadline = (yield* Clock.currentTimeMillis) + settings.graceSeconds * 1000
      // Polled rather than awaited once: a run the dispatcher was starting as the drain began
      // joins `running` a moment later, and is asked to stop as well.
      while (running.size > 0 && (yield* Clock.currentTimeMillis) < deadline) {
        for (const entry of running.values()) {
          if (entry.stopReason !== "shutdown") {
            entry.stopReason = "shutdown"
            // A run on a cluster runner goes on without this daemon; it follows it again on its next start.
            yield* entry.handle.detach ?? entry.handle.stop
          }
        }
        yield* Effect.sleep(Duration.millis(20))
      }
      if (running.size > 0) {
        yield* Effect.logWarning(`runs still going after ${settings.graceSeconds} s: ending them; they continue from their last saved state`)
        yield* Effect.forEach([...running.values()], (entry) => entry.handle.kill, { discard: true, concurrency: "unbounded" })
      }
      // Every run's status is written before the daemon goes.
      while (running.size > 0) yield* Effect.sleep(Duration.millis(10))
    })

    yield* recover
    const dispatch = yield* Effect.forkScoped(dispatcher)
    ready = true
    // Leaving the layer without a drain (tests, a failure): runs end at once.
    yield* Effect.addFinalizer(() => Effect.andThen(Effect.sync(() => (draining = true)), Fiber.interrupt(dispatch)))

    return RunQueue.of({
      submit,
      get: (id) =>
        Effect.gen(function*() {
          const record = yield* recordOf(id)
          const plan = yield* Effect.promise(() => readFile(join(folderOf(id), planFileName), "utf8").catch(() => ""))
          return RunDetail.make({ ...viewOf(record), plan, folder: folderOf(id) })
        }),
      record: recordOf,
      list: ({ status, limit = 50, offset = 0 }) =>
        store.list({ status, limit, offset }).pipe(
          Effect.map(({ runs, total }) => ({ runs: runs.map(viewOf), total, offset })),
          Effect.mapError(serverFailure)
        ),
      cancel,
      resume,
      remove,
      folderOf,
      counts: store.countByStatus.pipe(Effect.mapError(serverFailure)),
      runningProgress: Effect.sync(() =>
        [...running.keys()].map((id) => {
          const state = live.get(id)
          const tuning = state?.meter.current
          return {
            id,
            live: state?.logged !== undefined ? { ...state.logged, ...(tuning !== undefined ? { tuning } : {}) } : undefined
          }
        })
      ),
      lastEvaluationSeconds: Effect.sync(() => lastEvaluationSeconds),
      ready: Effect.sync(() => ready),
      drain
    })
  })
)
