/**
 * The daemon's queue and store: the SQLite job store on a real file (order of the queue, status
 * transitions that only one request can win, reopening, a damaged file, a newer schema), runs
 * started in priority order only as far as the memory budget holds them, a shutdown's drain
 * (503 for new work, running runs stopped resumably), and the token rules.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Context, Effect, Exit, Fiber, Layer, Option, Redacted, Schema } from "effect"
import { resolveInference } from "../../src/compute/Inference.ts"
import { readCheckpointConfig } from "../../src/io/CheckpointFolder.ts"
import { parsePlan } from "../../src/pipeline/Plan.ts"
import { runFootprint } from "../../src/pipeline/RunSetup.ts"
import { isLoopback, readOrCreateTokenFile, resolveToken, tokensMatch } from "../../src/server/Auth.ts"
import { JobStore, RunId } from "../../src/services/JobStore.ts"
import { call, startDaemon, submit, tinyPlan, waitForStatus, writeTinyRunInputs } from "../helpers/daemon.ts"
import { tempDir } from "../io/_support.ts"

const id = (n: number) => Schema.decodeSync(RunId)(`20990101-000000-${String(n).padStart(6, "0")}`)

const withStore = <A, E>(file: string, f: (store: JobStore["Service"]) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(Layer.build(JobStore.layerSqlite(file)), (context) => f(Context.get(context, JobStore))))

describe("the job store", () => {
  it.live("orders the queue (shutdown-stopped first, then priority, then submission), lets one transition win, and reopens", () =>
    Effect.gen(function*() {
      const file = join(yield* tempDir, "simmer.db")
      yield* withStore(file, (store) =>
        Effect.gen(function*() {
          for (const [n, priority] of [[1, 0], [2, 5], [3, 0], [4, 5]] as const) yield* store.insert({ id: id(n), name: `run ${n}`, priority })
          const order: Array<string> = []
          for (;;) {
            const next = yield* store.nextQueued([])
            if (Option.isNone(next)) break
            order.push(next.value.name)
            expect(yield* store.transition(next.value.id, ["queued"], { status: "running", startedAt: "now" })).toBe(true)
            expect(yield* store.transition(next.value.id, ["queued"], { status: "cancelled" })).toBe(false)
          }
          expect(order).toEqual(["run 2", "run 4", "run 1", "run 3"])
          // A run stopped by a shutdown goes ahead of any priority.
          yield* store.setStatus(id(3), { status: "queued", first: true })
          yield* store.setStatus(id(4), { status: "queued" })
          expect(Option.getOrThrow(yield* store.nextQueued([])).id).toBe(id(3))
          expect(Option.getOrThrow(yield* store.nextQueued([id(3)])).id).toBe(id(4))
          yield* store.setStatus(id(1), { status: "failed", error: "boom", endedAt: "then" })
          yield* store.setProgress(id(1), { seq: 3, strategy: "ptl", iteration: 1, attempt: 0, phase: "tuned", share: 0.8, metrics: {}, tuningTokens: 99 })
          expect(yield* store.countByStatus).toEqual({ queued: 2, running: 1, interrupted: 0, cancelled: 0, failed: 1, finished: 0 })
        }))
      // The same file opened again (the next start) holds the same rows.
      yield* withStore(file, (store) =>
        Effect.gen(function*() {
          const all = yield* store.all
          expect(all.map((r) => [r.name, r.status])).toEqual([["run 1", "failed"], ["run 2", "running"], ["run 3", "queued"], ["run 4", "queued"]])
          expect(all[0]).toMatchObject({ error: "boom", progress: { tuningTokens: 99, share: 0.8 } })
          const page = yield* store.list({ limit: 2, offset: 1 })
          expect([page.total, page.runs.map((r) => r.name)]).toEqual([4, ["run 3", "run 2"]])
          // Queued again: how it ended last time is forgotten.
          yield* store.setStatus(id(1), { status: "queued" })
          expect(Option.getOrThrow(yield* store.get(id(1)))).not.toHaveProperty("error")
        }))
    }))

  it.live("refuses a file that is not a store, and one written by a newer simmer", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      writeFileSync(join(tmp, "garbage.db"), "this is not a database, just text that is long enough to have a header".repeat(20))
      const garbage = yield* Effect.exit(withStore(join(tmp, "garbage.db"), () => Effect.void))
      expect(Exit.isFailure(garbage) && String(garbage.cause)).toContain(`The job store ${join(tmp, "garbage.db")} failed`)
      const newer = new DatabaseSync(join(tmp, "newer.db"))
      newer.exec("PRAGMA user_version = 99")
      newer.close()
      const refused = yield* Effect.exit(withStore(join(tmp, "newer.db"), () => Effect.void))
      expect(Exit.isFailure(refused) && String(refused.cause)).toContain("written by a newer simmer (schema version 99")
    }))
})

describe("the run queue", () => {
  it.live("starts runs by priority, never more at once than the memory budget holds", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const plan = tinyPlan("model", { steps: 3 })
      const parsed = yield* parsePlan(plan, "plan", { relativeTo: tmp })
      const { config } = yield* readCheckpointConfig(join(tmp, "model"))
      // As the daemon counts it: cpu's host memory, the engine auto (or SIMMER_INFERENCE) picks there.
      const need = runFootprint(parsed, config, { inference: yield* resolveInference(undefined, "cpu"), budget: "host memory" }).bytes
      // Room for one run and a half: concurrency allows three, memory only one.
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp], concurrency: 3, memoryGib: (1.5 * need) / 2 ** 30 })
      const folder = `?folder=${encodeURIComponent(tmp)}`
      const first = (yield* submit(daemon, plan, `${folder}&name=first`)).body.id
      yield* waitForStatus(daemon, first, ["running"])
      const low = (yield* submit(daemon, plan, `${folder}&name=low`)).body.id
      const high = (yield* submit(daemon, plan, `${folder}&name=high&priority=3`)).body.id
      const runs = yield* Effect.forEach([first, high, low], (r) => waitForStatus(daemon, r, ["finished"]))
      for (let i = 1; i < runs.length; i++) expect(Date.parse(runs[i].startedAt)).toBeGreaterThanOrEqual(Date.parse(runs[i - 1].endedAt))
    }), 60_000)

  it.live("a drain refuses new work with 503, stops running runs resumably, and marks them interrupted", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const folder = `?folder=${encodeURIComponent(tmp)}`
      const long = (yield* submit(daemon, tinyPlan("model", { steps: 5000 }), folder)).body.id
      yield* waitForStatus(daemon, long, ["running"])
      const draining = yield* Effect.forkChild(daemon.queue.drain)
      const refused = yield* submit(daemon, tinyPlan("model"), folder)
      expect(refused.status).toBe(503)
      expect(refused.body._tag).toBe("ShuttingDown")
      expect((yield* call(`${daemon.url}/readyz`)).status).toBe(503)
      yield* Fiber.join(draining)
      const stopped = (yield* call(`${daemon.url}/v1/runs/${long}`)).body
      expect(stopped.status).toBe("interrupted")
      const events = readFileSync(join(tmp, "data", "runs", long, "events.ndjson"), "utf8").trim().split("\n")
      expect(JSON.parse(events.at(-1)!).phase).toBe("interrupted")
    }), 60_000)
})

describe("tokens", () => {
  it.live("loopback needs none; any other address needs one; a token file is made once, mode 0600; compared exactly", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      expect(["127.0.0.1", "127.3.4.5", "localhost", "::1"].every(isLoopback)).toBe(true)
      expect(["0.0.0.0", "10.0.0.1", "::", "example.test"].some(isLoopback)).toBe(false)
      expect(yield* resolveToken({ host: "127.0.0.1", tokenFile: undefined, envToken: undefined })).toBeUndefined()
      const refused = yield* Effect.flip(resolveToken({ host: "0.0.0.0", tokenFile: undefined, envToken: undefined }))
      expect(refused.message).toContain("simmer serve --host 0.0.0.0 would accept runs from the network without a token")
      const fromEnv = yield* resolveToken({ host: "0.0.0.0", tokenFile: undefined, envToken: Redacted.make("abc") })
      expect(Redacted.value(fromEnv!)).toBe("abc")

      const path = join(tmp, "secrets", "token")
      const made = Redacted.value((yield* readOrCreateTokenFile(path)))
      expect(made).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(statSync(path).mode & 0o777).toBe(0o600)
      expect(Redacted.value((yield* resolveToken({ host: "0.0.0.0", tokenFile: path, envToken: undefined }))!)).toBe(made)
      writeFileSync(join(tmp, "empty"), "\n")
      expect((yield* Effect.flip(readOrCreateTokenFile(join(tmp, "empty")))).message).toContain("the file is empty")

      expect(tokensMatch(made, made)).toBe(true)
      expect(tokensMatch(made, made.slice(0, -1))).toBe(false)
      expect(tokensMatch("", made)).toBe(false)
    }))
})
