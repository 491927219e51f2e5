/**
 * `simmer serve --cluster` as a fleet on loopback: one Postgres (a throw-away server), two runner
 * processes and one API process over one shared data directory. A runner is killed (-9) while a
 * run tunes, stopped with SIGTERM, paused with SIGSTOP until its run moved, and Postgres is
 * restarted under running runs: every run finishes once, on one runner at a time, to the same
 * bytes as an uninterrupted `simmer run`. Each time a runner goes, a fresh one joins, so the
 * fleet has two runners again.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { simmer } from "../helpers/cli.ts"
import { holderOf, type RunnerProcess, startClusterApi, startRunner } from "../helpers/clusterProcess.ts"
import { submit, tinyPlan, waitForStatus, writeTinyRunInputs } from "../helpers/daemon.ts"
import { type DaemonProcess, loggedEvents, waitUntil } from "../helpers/daemonProcess.ts"
import { type Postgres, startPostgres } from "../helpers/postgres.ts"

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

let pg: Postgres
let tmp: string
let data: string
let api: DaemonProcess
let runners: Array<RunnerProcess> = []
let reference: ReturnType<typeof simmer>
const plan = tinyPlan("model", { iterations: 2, steps: 12 })
const finalStage = join("stages", "ptl-002", "model.safetensors")
const handOver: Record<string, number> = {}

const submitRun = async (name: string) => {
  const reply = await run(submit(api, plan, `?folder=${encodeURIComponent(tmp)}&name=${name}`))
  expect(reply.status, JSON.stringify(reply.body)).toBe(201)
  return reply.body.id as string
}
const dirOf = (id: string) => join(data, "runs", id)
const tuning = (id: string) => loggedEvents(dirOf(id)).some((e) => e.phase === "pruned" && e.iteration === 1)

/** Every event once, in order, one `finished`; the final weights those of the uninterrupted run. */
const expectCompleteAndIdentical = async (id: string) => {
  const events = loggedEvents(dirOf(id))
  expect(events.map((e) => e.seq), id).toEqual(events.map((_, i) => i))
  expect(events.filter((e) => e.phase === "finished"), id).toHaveLength(1)
  const ran = await reference
  expect(ran.status, ran.stderr).toBe(0)
  expect(readFileSync(join(dirOf(id), finalStage)).equals(readFileSync(join(tmp, "reference", finalStage))), `${id}: final checkpoint differs`).toBe(true)
}

/** Waits until some runner other than `gone` logs that it took `id` over; the seconds since `since`. */
const waitForTakeOver = async (id: string, gone: RunnerProcess, since: number) => {
  await waitUntil(() => {
    const holder = holderOf(runners, id)
    return holder !== undefined && holder !== gone
  }, `run ${id} to move off ${gone.address}`)
  return (performance.now() - since) / 1000
}

/** Replaces a runner that went, so the fleet has two again. */
const replace = async (gone: RunnerProcess) => {
  runners = runners.filter((r) => r !== gone)
  runners.push(await startRunner(data, pg.url))
}

describe("simmer serve --cluster: runs over a fleet of runners", () => {
  beforeAll(async () => {
    pg = await startPostgres()
    tmp = mkdtempSync(join(tmpdir(), "simmer-cluster-"))
    await run(writeTinyRunInputs(tmp))
    writeFileSync(join(tmp, "plan.yaml"), plan)
    data = join(tmp, "data")
    // The uninterrupted reference, computed beside the cluster.
    reference = simmer(["run", join(tmp, "plan.yaml"), "--out", join(tmp, "reference"), "--workers", "1"])
    runners = await Promise.all([startRunner(data, pg.url), startRunner(data, pg.url)])
    api = await startClusterApi(data, pg.url, [tmp])
  }, 120_000)

  afterAll(async () => {
    for (const p of [...runners, api]) p?.child.kill("SIGKILL")
    await Promise.all([...runners, api].map((p) => p?.exited))
    pg?.destroy()
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true })
    console.log(JSON.stringify({ clusterHandOverSeconds: handOver }))
  })

  it("kill -9 of the runner holding a tuning run: it finishes on the other runner, byte-identical; the others finish too", async () => {
    const ids = [await submitRun("a"), await submitRun("b"), await submitRun("c")]
    await waitUntil(() => tuning(ids[0]) && holderOf(runners, ids[0]) !== undefined, "run a to tune")
    const victim = holderOf(runners, ids[0])!
    const killed = performance.now()
    victim.child.kill("SIGKILL")
    expect(await victim.exited).toBe("SIGKILL")
    handOver.kill9 = await waitForTakeOver(ids[0], victim, killed)
    for (const id of ids) {
      const done = await run(waitForStatus(api, id, ["finished", "failed"]))
      expect(done.status, `${id}: ${done.error}`).toBe("finished")
    }
    for (const id of ids) await expectCompleteAndIdentical(id)
    // It moved: another runner's log shows it taking the run over with a newer epoch.
    expect(holderOf(runners, ids[0])).not.toBe(victim)
    await replace(victim)
  }, 180_000)

  it("SIGTERM of the runner holding a run: it saves at a step boundary, exits 75, and the other runner continues within seconds", async () => {
    const id = await submitRun("preempted")
    // A client follows the run through the API from the start, across the hand-over.
    const followed = fetch(`${api.url}/v1/runs/${id}/events?format=ndjson`).then((r) => r.text())
    await waitUntil(() => tuning(id) && holderOf(runners, id) !== undefined, "the run to tune")
    const victim = holderOf(runners, id)!
    const stopping = performance.now()
    victim.child.kill("SIGTERM")
    handOver.sigterm = await waitForTakeOver(id, victim, stopping)
    expect(await victim.exited).toBe(75)
    expect(victim.log()).toContain(`run ${id} leaves this runner (it stops, or the run's shard moves): saving at the next step boundary`)
    const done = await run(waitForStatus(api, id, ["finished", "failed"]))
    expect(done.status, done.error).toBe("finished")
    const events = loggedEvents(dirOf(id))
    // It stopped resumably where it was and continued from there, not from the iteration's start.
    expect(events.some((e) => e.phase === "interrupted" && e.iteration === 1)).toBe(true)
    await expectCompleteAndIdentical(id)
    expect(handOver.sigterm).toBeLessThan(15)
    // The API saw every logged event, from whichever runner wrote it, in order, then the end.
    const lines = (await followed).trim().split("\n").map((l) => JSON.parse(l))
    expect(lines.filter((l) => l.type === "state").map((l) => l.event.seq)).toEqual(events.map((e) => e.seq))
    expect(lines.at(-1)).toMatchObject({ type: "status", status: "finished" })
    await replace(victim)
  }, 120_000)

  it("a paused runner whose run moved cannot write into it when it wakes: its late write is refused by the fence", async () => {
    const id = await submitRun("stale")
    await waitUntil(() => tuning(id) && holderOf(runners, id) !== undefined, "the run to tune")
    const stale = holderOf(runners, id)!
    const paused = performance.now()
    // The runner and its run's process, as a frozen VM would be.
    process.kill(-stale.child.pid!, "SIGSTOP")
    handOver.sigstop = await waitForTakeOver(id, stale, paused)
    process.kill(-stale.child.pid!, "SIGCONT")
    await waitUntil(() => stale.log().includes("this write was refused"), "the stale runner to be refused")
    expect(stale.log()).toMatch(new RegExp(`Run ${id} moved to \\S+ \\(fencing epoch \\d+\\)`))
    const done = await run(waitForStatus(api, id, ["finished", "failed"]))
    expect(done.status, done.error).toBe("finished")
    await expectCompleteAndIdentical(id)
  }, 120_000)

  it("Postgres restarted under running runs: the runners reconnect and nothing is lost", async () => {
    const ids = [await submitRun("pg-1"), await submitRun("pg-2")]
    await waitUntil(() => ids.every(tuning), "both runs to tune")
    pg.stop()
    await new Promise((r) => setTimeout(r, 2000))
    pg.start()
    for (const id of ids) {
      const done = await run(waitForStatus(api, id, ["finished", "failed"]))
      expect(done.status, `${id}: ${done.error}`).toBe("finished")
      await expectCompleteAndIdentical(id)
    }
  }, 120_000)

  it("the API process stopped mid-run: the run goes on on its runner, and the restarted API follows it to the end", async () => {
    const id = await submitRun("api-restart")
    await waitUntil(() => tuning(id) && holderOf(runners, id) !== undefined, "the run to tune")
    const holder = holderOf(runners, id)!
    api.child.kill("SIGTERM")
    expect(await api.exited).toBe(75)
    const accepted = loggedEvents(dirOf(id)).filter((e) => e.phase === "accepted").length
    await waitUntil(() => loggedEvents(dirOf(id)).filter((e) => e.phase === "accepted").length > accepted, "the run to go on without the API")
    api = await startClusterApi(data, pg.url, [tmp])
    const done = await run(waitForStatus(api, id, ["finished", "failed"]))
    expect(done.status, done.error).toBe("finished")
    // Never moved: the runner that had it finished it, once.
    expect(holderOf(runners, id)).toBe(holder)
    await expectCompleteAndIdentical(id)
  }, 120_000)

  it("a sweep of 6 combinations over the runners finishes with 6 reports and one comparison", async () => {
    const sweep = tinyPlan("model", { iterations: 1, steps: 2 }).replace("scorer: activation\n", "") + "sweep:\n  scorer: [activation, random]\n  seed: [1, 2, 3]\n"
    writeFileSync(join(tmp, "sweep.yaml"), sweep)
    const ran = await simmer(["sweep", join(tmp, "sweep.yaml"), "--server", api.url, "--poll", "0.5"])
    expect(ran.status, ran.stderr).toBe(0)
    const lines = ran.stdout.split("\n").filter((l) => /^\d{8}-\d{6}-[0-9a-f]{6}  /.test(l))
    expect(lines).toHaveLength(6)
    expect(lines.every((l) => l.includes(" finished "))).toBe(true)
    const ids = lines.map((l) => l.split(" ")[0])
    for (const id of ids) expect(existsSync(join(dirOf(id), "report.html")), id).toBe(true)
    expect(ran.stdout).toContain(`comparison: ${join(tmp, "sweep-comparison.html")}`)
    const page = readFileSync(join(tmp, "sweep-comparison.html"), "utf8")
    for (const id of ids) expect(page, id).toContain(id)
    const labels = lines.map((l) => l.split(/\s+/).slice(2).join(" ")).sort()
    expect(labels).toEqual([1, 2, 3].flatMap((seed) => [`scorer=activation seed=${seed}`, `scorer=random seed=${seed}`]).sort())
    // Where the shard manager placed them (hashing run ids over the runners' shards).
    console.log(JSON.stringify({ sweepPlacement: ids.map((id) => holderOf(runners, id)?.address) }))
  }, 180_000)
})

