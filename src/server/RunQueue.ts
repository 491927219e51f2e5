/**
 * The daemon's queue and the life of every run in it, as one service: on start the store and
 * the run folders are reconciled (QueueRecovery.ts), then one dispatcher starts queued runs as
 * room allows and follows them to their end (RunDispatcher.ts), while clients submit, cancel,
 * resume and delete runs (RunRequests.ts) and read them here. A shutdown drains: no new work
 * (503), every running run asked to stop at its next step boundary and save, within the grace
 * period (status `interrupted`, continued first on the next start).
 */
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { Context, Effect, Layer } from "effect"
import type { FileSystemError } from "../io/Errors.ts"
import { planFileName } from "../io/RunFolder.ts"
import type { Compute } from "../services/Compute.ts"
import type { Datasets } from "../services/Datasets.ts"
import type { DeviceMemory } from "../services/DeviceMemory.ts"
import { JobStore, type JobStoreError, type RunId, type RunRecord, type RunStatus } from "../services/JobStore.ts"
import { RunDetail, type RunNotFound, type RunStateConflict, type RunView, type ServerFailure, type ShuttingDown } from "./Api.ts"
import { DaemonConfig, runsDirOf } from "./DaemonConfig.ts"
import { recoverQueue } from "./QueueRecovery.ts"
import { makeRunDispatcher } from "./RunDispatcher.ts"
import type { RunExecutor } from "./RunExecutor.ts"
import type { RunHub } from "./RunHub.ts"
import { makeRunRequests, serverFailure, type SubmitOptions } from "./RunRequests.ts"
import type { admitPlan } from "./Submission.ts"

export type { SubmitOptions } from "./RunRequests.ts"

export interface ListQuery {
  readonly status?: RunStatus | undefined
  readonly limit?: number | undefined
  readonly offset?: number | undefined
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
    const settings = yield* DaemonConfig
    const runsDir = runsDirOf(settings)
    const folderOf = (id: RunId) => join(runsDir, id)
    yield* recoverQueue(runsDir)
    const dispatcher = yield* makeRunDispatcher({ concurrency: settings.concurrency, graceSeconds: settings.graceSeconds, folderOf })
    const requests = yield* makeRunRequests(dispatcher)
    const { viewOf } = dispatcher

    return RunQueue.of({
      submit: requests.submit,
      get: (id) =>
        Effect.gen(function*() {
          const record = yield* requests.recordOf(id)
          const plan = yield* Effect.promise(() => readFile(join(folderOf(id), planFileName), "utf8").catch(() => ""))
          return RunDetail.make({ ...viewOf(record), plan, folder: folderOf(id) })
        }),
      record: requests.recordOf,
      list: ({ status, limit = 50, offset = 0 }) =>
        store.list({ status, limit, offset }).pipe(
          Effect.map(({ runs, total }) => ({ runs: runs.map(viewOf), total, offset })),
          Effect.mapError(serverFailure)
        ),
      cancel: requests.cancel,
      resume: requests.resume,
      remove: requests.remove,
      folderOf,
      counts: store.countByStatus.pipe(Effect.mapError(serverFailure)),
      runningProgress: Effect.sync(() =>
        [...dispatcher.running.keys()].map((id) => {
          const state = dispatcher.liveOf(id)
          const tuning = state?.meter.current
          return {
            id,
            live: state?.logged !== undefined ? { ...state.logged, ...(tuning !== undefined ? { tuning } : {}) } : undefined
          }
        })
      ),
      lastEvaluationSeconds: Effect.sync(dispatcher.lastEvaluationSeconds),
      ready: Effect.sync(() => !dispatcher.draining()),
      drain: dispatcher.drain
    })
  })
)
