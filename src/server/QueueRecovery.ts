/**
 * What a daemon does with its job store and run folders before it takes work: runs the last
 * process left `running` (kill -9) or `interrupted` go back to the front of the queue, a folder
 * without a row (written just before a crash) is adopted, a row whose folder is gone fails
 * saying so, and half-deleted or half-written folders are removed.
 */
import { readdir, rm } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Schema } from "effect"
import { pathExists } from "../io/AtomicWrite.ts"
import { planFileName } from "../io/RunFolder.ts"
import { JobStore, RunId } from "../services/JobStore.ts"

const isRunId = Schema.is(RunId)

export const recoverQueue = (runsDir: string) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const folderOf = (id: RunId) => join(runsDir, id)
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
