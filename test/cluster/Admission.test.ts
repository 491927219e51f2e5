/**
 * A runner admits what its own DeviceMemory holds (the daemon's reservation, by each plan's
 * estimated peak): with room for one tiny run (~9 MiB of a 13 MiB budget), a second run placed on
 * it waits and starts when the first ends; a run it could never hold fails, saying why.
 * Cancelling through the API reaches the runner: a waiting run ends at once, a running one at
 * its next step boundary.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { type RunnerProcess, startClusterApi, startRunner } from "../helpers/clusterProcess.ts"
import { call, submit, tinyPlan, waitForStatus, writeTinyRunInputs } from "../helpers/daemon.ts"
import { type DaemonProcess, loggedEvents, waitUntil } from "../helpers/daemonProcess.ts"
import { type Postgres, startPostgres } from "../helpers/postgres.ts"

let pg: Postgres
let tmp: string
let runner: RunnerProcess
let api: DaemonProcess

describe("a cluster runner's memory admission", () => {
  beforeAll(async () => {
    pg = await startPostgres()
    tmp = mkdtempSync(join(tmpdir(), "simmer-admission-"))
    await Effect.runPromise(writeTinyRunInputs(tmp))
    runner = await startRunner(join(tmp, "data"), pg.url, ["--memory", "0.013"])
    api = await startClusterApi(join(tmp, "data"), pg.url, [tmp])
  }, 120_000)

  afterAll(async () => {
    for (const p of [runner, api]) p?.child.kill("SIGKILL")
    await Promise.all([runner, api].map((p) => p?.exited))
    pg?.destroy()
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true })
  })

  it("runs one run at a time when only one fits, and fails a run that never can", async () => {
    const folder = `?folder=${encodeURIComponent(tmp)}`
    const plan = tinyPlan("model", { iterations: 1, steps: 4 })
    const a = (await Effect.runPromise(submit(api, plan, folder))).body.id as string
    const b = (await Effect.runPromise(submit(api, plan, folder))).body.id as string
    for (const id of [a, b]) expect((await Effect.runPromise(waitForStatus(api, id, ["finished", "failed"]))).status, id).toBe("finished")
    expect(runner.log()).toMatch(new RegExp(`run (${a}|${b}) waits for room on ${runner.address}`))
    // Never side by side: one run's log ends before the other's begins.
    const span = (id: string) => {
      const events = loggedEvents(join(tmp, "data", "runs", id))
      return [Date.parse(events[0].time), Date.parse(events.at(-1).time)] as const
    }
    const [first, second] = [span(a), span(b)].sort((x, y) => x[0] - y[0])
    expect(first[1]).toBeLessThanOrEqual(second[0])

    const big = (await Effect.runPromise(submit(api, tinyPlan("model", { iterations: 1, steps: 1, batchSize: 64 }), folder))).body.id as string
    const failed = await Effect.runPromise(waitForStatus(api, big, ["finished", "failed"]))
    expect(failed.status).toBe("failed")
    expect(failed.error).toMatch(/MiB/)
  }, 120_000)

  it("cancels a run that waits for room at once, and a running run at its next step boundary", async () => {
    const folder = `?folder=${encodeURIComponent(tmp)}`
    const running = (await Effect.runPromise(submit(api, tinyPlan("model", { iterations: 2, steps: 40 }), folder))).body.id as string
    const waiting = (await Effect.runPromise(submit(api, tinyPlan("model", { iterations: 1, steps: 1 }), folder))).body.id as string
    await waitUntil(() => runner.log().includes(`run ${waiting} waits for room`), "the second run to wait for room")
    await Effect.runPromise(call(`${api.url}/v1/runs/${waiting}/cancel`, { method: "POST" }))
    expect((await Effect.runPromise(waitForStatus(api, waiting, ["cancelled", "finished", "failed"]))).status).toBe("cancelled")
    expect(loggedEvents(join(tmp, "data", "runs", waiting))).toEqual([])
    await waitUntil(() => loggedEvents(join(tmp, "data", "runs", running)).some((e) => e.phase === "pruned"), "the first run to tune")
    await Effect.runPromise(call(`${api.url}/v1/runs/${running}/cancel`, { method: "POST" }))
    expect((await Effect.runPromise(waitForStatus(api, running, ["cancelled", "finished", "failed"]))).status).toBe("cancelled")
    expect(loggedEvents(join(tmp, "data", "runs", running)).at(-1)).toMatchObject({ phase: "interrupted" })
  }, 120_000)
})

