/**
 * The daemon's running runs: one dispatcher takes queued runs in order — runs stopped by a
 * shutdown first, then priority, then submission — and starts each as soon as the executor
 * finds room for it within `concurrency`. Each running run's updates feed its live progress, the
 * job store and the event hub; when it ends, its status is written and its place freed. A drain
 * stops the dispatcher, asks every running run to stop at its next step boundary and save, and
 * waits for them up to the grace period (then ends those still going).
 */
import { Clock, Duration, Effect, Fiber, FiberMap, Option, Queue, type Scope } from "effect"
import { eventsFileName } from "../io/RunFolder.ts"
import { readEvents } from "../io/EventLog.ts"
import type { RunUpdate } from "../pipeline/RunUpdate.ts"
import { JobStore, type LoggedProgress, type RunId, type RunRecord, type RunStatus } from "../services/JobStore.ts"
import { join } from "node:path"
import { makeTuningMeter, progressAfter, progressOfLog, type TuningMeter } from "./Progress.ts"
import { type RunHandle, RunExecutor } from "./RunExecutor.ts"
import { readRunJob } from "./RunJob.ts"
import type { RunView } from "./Api.ts"
import { RunHub } from "./RunHub.ts"

/** A running run: how to stop it, and why it was asked to. */
export interface Running {
  readonly handle: RunHandle
  stopReason: "cancel" | "shutdown" | undefined
}

/** Per-run live state, kept while a run runs. */
export interface Live {
  original: number | undefined
  logged: LoggedProgress | undefined
  readonly meter: TuningMeter
}

export interface DispatcherSettings {
  readonly concurrency: number
  readonly graceSeconds: number
  readonly folderOf: (id: RunId) => string
}

export const now = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms).toISOString()))

/** Starts dispatching (after recovery); the dispatcher and the runs' watchers live in the caller's scope. */
export const makeRunDispatcher = (settings: DispatcherSettings) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const executor = yield* RunExecutor
    const hub = yield* RunHub
    const running = new Map<RunId, Running>()
    const live = new Map<RunId, Live>()
    // One fiber per running run, waiting for its end: a drain waits for the map to empty.
    const watchers = yield* FiberMap.make<RunId, void, never>()
    let draining = false
    let lastEvaluationSeconds: number | undefined
    // Wakes the dispatcher: a submission, a resumed run, a run that ended (its memory is free).
    const pokes = yield* Queue.dropping<void>(1)
    const poke = Queue.offer(pokes, undefined).pipe(Effect.asVoid)

    const publishStatus = (id: RunId, status: RunStatus, error?: string) =>
      hub.publish({ id, item: { _tag: "Status", status, ...(error !== undefined ? { error } : {}) } })

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

    /** Waits for a run to end, records how, and frees its place. */
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
      }).pipe(Effect.withSpan("RunQueue.settle", { attributes: { run: id } }))

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
      const job = yield* readRunJob(record.id, settings.folderOf(record.id)).pipe(Effect.result)
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
      yield* FiberMap.run(watchers, record.id, settle(record.id, entry))
      return true
    }).pipe(Effect.withSpan("RunQueue.startNext"))

    const dispatch = yield* Effect.forkScoped(Effect.gen(function*() {
      while (!draining) {
        const startedOne = yield* startNext.pipe(
          Effect.catch((e) => Effect.andThen(Effect.logError(`the queue could not start a run: ${e.message}`), Effect.succeed(false)))
        )
        if (!startedOne) yield* Queue.take(pokes)
      }
    }))

    /** Asks each running run to stop and save, waits up to the grace period, then ends those still going. */
    const drain = Effect.gen(function*() {
      if (draining) return
      draining = true
      yield* poke
      // From here no run is being started, so every run that will run is in `running`.
      yield* Fiber.await(dispatch)
      if (running.size > 0) yield* Effect.logInfo(`stopping ${running.size} run(s) at their next step boundary (grace ${settings.graceSeconds} s)`)
      for (const entry of running.values()) {
        entry.stopReason = "shutdown"
        // A run on a cluster runner goes on without this daemon; it follows it again on its next start.
        yield* entry.handle.detach ?? entry.handle.stop
      }
      const stopped = yield* FiberMap.awaitEmpty(watchers).pipe(Effect.timeoutOption(Duration.seconds(settings.graceSeconds)))
      if (Option.isNone(stopped)) {
        yield* Effect.logWarning(`runs still going after ${settings.graceSeconds} s: ending them; they continue from their last saved state`)
        yield* Effect.forEach([...running.values()], (entry) => entry.handle.kill, { discard: true, concurrency: "unbounded" })
        // Every run's status is written before the daemon goes.
        yield* FiberMap.awaitEmpty(watchers)
      }
    }).pipe(Effect.withSpan("RunQueue.drain"))

    // Leaving without a drain (tests, a failure): nothing more starts; the runs end with the executor.
    yield* Effect.addFinalizer(() => Effect.sync(() => (draining = true)))

    /** A run as the API shows it: its record, with the live progress of a running run. */
    const viewOf = (record: RunRecord): RunView => {
      const { seq: _seq, first: _first, progress: logged, ...view } = record
      const meter = record.status === "running" ? live.get(record.id)?.meter : undefined
      const tuning = meter?.current
      const progress = logged !== undefined
        ? { ...logged, tuningTokens: logged.tuningTokens + (meter?.tokens ?? 0), ...(tuning !== undefined ? { tuning } : {}) }
        : undefined
      return { ...view, ...(progress !== undefined ? { progress } : {}) }
    }

    return {
      poke,
      publishStatus,
      viewOf,
      drain,
      running: running as ReadonlyMap<RunId, Running>,
      liveOf: (id: RunId) => live.get(id),
      forget: (id: RunId) => live.delete(id),
      draining: () => draining,
      lastEvaluationSeconds: () => lastEvaluationSeconds
    }
  }) satisfies Effect.Effect<unknown, unknown, JobStore | RunExecutor | RunHub | Scope.Scope>

export type RunDispatcher = Effect.Success<ReturnType<typeof makeRunDispatcher>>
