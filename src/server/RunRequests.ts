/**
 * What clients ask of the daemon's queue. Submitting writes the run folder (in the `simmer run`
 * format) and then the job-store row, so a crash in between leaves a folder the next start
 * adopts, never a row without its folder. Cancelling asks a running run to stop at its next
 * step boundary (status `cancelled`); resuming queues a stopped run again; deleting hides the
 * folder first, then removes the row, then the bytes.
 */
import { randomBytes } from "node:crypto"
import { rename, rm } from "node:fs/promises"
import { join } from "node:path"
import { Clock, Effect, Option, Schema } from "effect"
import { describeCause, errnoCode } from "../io/Errors.ts"
import { createRunFolder } from "../io/RunFolder.ts"
import { simmerVersion } from "../io/RunInfo.ts"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { JobStore, RunId, type RunStatus } from "../services/JobStore.ts"
import { RunNotFound, RunStateConflict, ServerFailure, ShuttingDown } from "./Api.ts"
import { DaemonConfig, runsDirOf } from "./DaemonConfig.ts"
import { now, type RunDispatcher } from "./RunDispatcher.ts"
import { admitPlan } from "./Submission.ts"

export interface SubmitOptions {
  readonly name?: string | undefined
  readonly priority?: number | undefined
  readonly folder?: string | undefined
}

export const serverFailure = (e: { readonly message: string }) => new ServerFailure({ message: e.message })
const notFound = (id: string) => new RunNotFound({ message: `There is no run ${id} on this daemon (\`simmer runs\` lists them).` })

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

/** A fresh run id: the submission time (UTC) and six random hex digits. */
const newRunId = (now: Date): RunId =>
  Schema.decodeSync(RunId)(
    `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}-${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${
      pad(now.getUTCSeconds())
    }-${randomBytes(3).toString("hex")}`
  )

export const makeRunRequests = (dispatcher: RunDispatcher) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const settings = yield* DaemonConfig
    const memory = yield* DeviceMemory
    const compute = yield* Compute
    const datasets = yield* Datasets
    const runsDir = runsDirOf(settings)
    const folderOf = (id: RunId) => join(runsDir, id)
    const { viewOf, publishStatus, poke } = dispatcher

    const recordOf = (id: RunId) =>
      store.get(id).pipe(Effect.mapError(serverFailure), Effect.flatMap(Option.match({ onNone: () => Effect.fail(notFound(id)), onSome: Effect.succeed })))

    const submit = Effect.fn("RunQueue.submit")(function*(text: string, options: SubmitOptions) {
      if (dispatcher.draining()) return yield* new ShuttingDown({ message: "The daemon is shutting down and accepts no new runs; submit again once it is back." })
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

    const cancel = Effect.fn("RunQueue.cancel")(function*(id: RunId) {
      const record = yield* recordOf(id)
      const entry = dispatcher.running.get(id)
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

    const resume = Effect.fn("RunQueue.resume")(function*(id: RunId) {
      if (dispatcher.draining()) return yield* new ShuttingDown({ message: "The daemon is shutting down; resume the run once it is back." })
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

    const remove = Effect.fn("RunQueue.remove")(function*(id: RunId) {
      const record = yield* recordOf(id)
      // A queued run is taken off the queue first, so the dispatcher cannot start it meanwhile.
      const takeable: ReadonlyArray<RunStatus> = ["queued", "cancelled", "interrupted", "failed", "finished"]
      if (dispatcher.running.has(id) || !(yield* store.transition(id, takeable, { status: "cancelled" }).pipe(Effect.mapError(serverFailure)))) {
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
      dispatcher.forget(id)
      yield* Effect.promise(() => rm(hidden, { recursive: true, force: true }))
    })

    return { submit, cancel, resume, remove, recordOf }
  })
