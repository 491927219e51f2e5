/**
 * Each daemon run in its own process (ProcessRunExecutor): kill -9 of one run's process while
 * another runs (the daemon answers throughout, the killed run is started again from what it
 * saved and ends byte-identical, the other is untouched), a run starved of memory fails alone
 * with the memory error, a run whose process keeps dying fails once its retries are spent, and
 * SIGTERM with two runs in flight stops both resumably (exit 75) and the next start finishes
 * both byte-identical to an uninterrupted run.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { simmer } from "../helpers/cli.ts"
import { call, startDaemon, submit, tinyPlan, waitForStatus, writeTinyRunInputs } from "../helpers/daemon.ts"
import { loggedEvents, startDaemonProcess, waitUntil } from "../helpers/daemonProcess.ts"
import { tempDir } from "../io/_support.ts"

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** The pid of the process that writes run folder `dir` now (its lock file). */
const writerOf = (dir: string): number => JSON.parse(readFileSync(join(dir, "lock"), "utf8")).pid

const tuningIn = (dir: string, iteration: number) => () => loggedEvents(dir).some((e) => e.phase === "pruned" && e.iteration === iteration)

const finalWeights = (dir: string) => readFileSync(join(dir, "stages", "ptl-002", "model.safetensors"))

describe("each run in its own process", () => {
  it.live("kill -9 of one run's process: the daemon answers throughout, the run continues from what it saved to the same bytes, the other run is untouched", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp], concurrency: 2, memoryGib: 8 })
      const plan = tinyPlan("model", { iterations: 2, steps: 30 })
      const folder = `?folder=${encodeURIComponent(tmp)}`
      const [killed, other] = [(yield* submit(daemon, plan, folder)).body.id as string, (yield* submit(daemon, plan, folder)).body.id as string]
      const dirOf = (id: string) => join(tmp, "data", "runs", id)
      yield* promise(() => waitUntil(tuningIn(dirOf(killed), 1), "the first run to tune"))
      const pid = writerOf(dirOf(killed))
      expect(pid).not.toBe(process.pid)
      process.kill(pid, "SIGKILL")

      // The API keeps answering while one run's process is gone and comes back.
      let answered = 0
      while (answered < 20) {
        const reply = yield* call(`${daemon.url}/v1/runs/${other}`)
        expect(reply.status).toBe(200)
        answered++
        yield* Effect.sleep("50 millis")
      }
      const [a, b] = yield* Effect.forEach([killed, other], (id) => waitForStatus(daemon, id, ["finished", "failed"]))
      expect(a.status, a.error).toBe("finished")
      expect(b.status, b.error).toBe("finished")

      const restarted = loggedEvents(dirOf(killed)).filter((e) => e.phase === "interrupted")
      expect(restarted).toHaveLength(1)
      expect(restarted[0].message).toMatch(/was killed \(SIGKILL.*retry 1 of 2/)
      expect(loggedEvents(dirOf(other)).some((e) => e.phase === "interrupted")).toBe(false)
      expect(finalWeights(dirOf(killed)).equals(finalWeights(dirOf(other)))).toBe(true)
    }), 180_000)

  it.live("a run starved of memory fails alone with the memory error; one whose process keeps dying fails once its retries are spent", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({
        dataDir: join(tmp, "data"),
        roots: [tmp],
        concurrency: 3,
        memoryGib: 8,
        retries: 0,
        // The run of seed 7 gets 1 KiB for its process: as a tiny --memory would give it.
        budgetOf: (job, reserved) => (job.plan.seed === 7 ? 1024 : reserved)
      })
      const folder = `?folder=${encodeURIComponent(tmp)}`
      const starved = (yield* submit(daemon, `${tinyPlan("model")}seed: 7\n`, folder)).body.id as string
      const dying = (yield* submit(daemon, tinyPlan("model", { iterations: 2, steps: 30 }), folder)).body.id as string
      const healthy = (yield* submit(daemon, tinyPlan("model"), folder)).body.id as string
      const dirOf = (id: string) => join(tmp, "data", "runs", id)
      yield* promise(() => waitUntil(tuningIn(dirOf(dying), 1), "the run to tune"))
      process.kill(writerOf(dirOf(dying)), "SIGKILL")

      const [s, d, h] = yield* Effect.forEach([starved, dying, healthy], (id) => waitForStatus(daemon, id, ["finished", "failed"]))
      expect(s.status).toBe("failed")
      expect(s.error).toMatch(/needs about .* of host memory at its peak .*, but the budget is 1 KiB/)
      expect(d.status).toBe("failed")
      expect(d.error).toMatch(/was killed \(SIGKILL.*1 time; it was not started again/)
      expect(h.status, h.error).toBe("finished")
    }), 180_000)

  it.live("SIGTERM with two runs in flight: exit 75; the next start finishes both, byte-identical to an uninterrupted run", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const plan = tinyPlan("model", { iterations: 2, steps: 30 })
      writeFileSync(join(tmp, "plan.yaml"), plan)
      const reference = simmer(["run", join(tmp, "plan.yaml"), "--out", join(tmp, "reference"), "--workers", "1"])

      const data = join(tmp, "data")
      const first = yield* promise(() => startDaemonProcess(data, [tmp], ["--concurrency", "2", "--memory", "8"]))
      const folder = `?folder=${encodeURIComponent(tmp)}`
      const ids = [(yield* submit(first, plan, folder)).body.id as string, (yield* submit(first, plan, folder)).body.id as string]
      const dirs = ids.map((id) => join(data, "runs", id))
      yield* promise(() => waitUntil(() => dirs.every((d) => tuningIn(d, 1)()), "both runs to tune"))
      first.child.kill("SIGTERM")
      expect(yield* promise(() => first.exited)).toBe(75)
      for (const dir of dirs) expect(loggedEvents(dir).at(-1)).toMatchObject({ phase: "interrupted" })

      const second = yield* promise(() => startDaemonProcess(data, [tmp], ["--concurrency", "2", "--memory", "8"]))
      const done = yield* Effect.forEach(ids, (id) => waitForStatus(second, id, ["finished", "failed"]))
      for (const run of done) expect(run.status, run.error).toBe("finished")
      const ran = yield* promise(() => reference)
      expect(ran.status, ran.stderr).toBe(0)
      for (const dir of dirs) expect(finalWeights(dir).equals(finalWeights(join(tmp, "reference")))).toBe(true)
      second.child.kill("SIGTERM")
      expect(yield* promise(() => second.exited)).toBe(75)
    }), 300_000)
})
