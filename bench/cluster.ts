/**
 * The cluster's costs, measured with real processes on loopback and a throw-away Postgres (the
 * tests' helpers): the hand-over time of a run whose runner is killed (-9) or stopped (SIGTERM)
 * while it tunes — from the signal until another runner logs that it took the run over — as the
 * median of --rounds each; and the scheduling overhead per run: submit-to-finished time of a
 * minimal plan under a cluster (an API process and one runner) against a single `simmer serve`,
 * --runs runs one after the other on each. A kill -9 is detected when the runner's shard locks
 * expire (--lease seconds, the product's default 10); a SIGTERM hands over at once.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { holderOf, type RunnerProcess, startClusterApi, startRunner } from "../test/helpers/clusterProcess.ts"
import { tinyPlan, writeTinyRunInputs } from "../test/helpers/daemon.ts"
import { type DaemonProcess, loggedEvents, startDaemonProcess, waitUntil } from "../test/helpers/daemonProcess.ts"
import { startPostgres } from "../test/helpers/postgres.ts"
import { type Benchmark, intOption, machineInfo, median, type Options, progress, round } from "./common.ts"

const submit = async (daemon: DaemonProcess, plan: string, folder: string) => {
  const response = await fetch(`${daemon.url}/v1/runs?folder=${encodeURIComponent(folder)}`, { method: "POST", body: plan, headers: { "content-type": "application/yaml" } })
  const body = (await response.json()) as { id?: string }
  if (response.status !== 201 || body.id === undefined) throw new Error(`submit: ${response.status} ${JSON.stringify(body)}`)
  return body.id
}

const statusOf = async (daemon: DaemonProcess, id: string) => ((await (await fetch(`${daemon.url}/v1/runs/${id}`)).json()) as { status: string }).status

const waitFinished = async (daemon: DaemonProcess, id: string) => {
  for (let i = 0; i < 3000; i++) {
    const status = await statusOf(daemon, id)
    if (status === "finished") return
    if (status === "failed" || status === "cancelled") throw new Error(`run ${id} ${status}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`run ${id} did not finish`)
}

const stopAll = async (processes: ReadonlyArray<{ readonly child: { kill: (s: NodeJS.Signals) => boolean }; readonly exited: Promise<unknown> }>) => {
  for (const p of processes) p.child.kill("SIGKILL")
  await Promise.all(processes.map((p) => p.exited))
}

export const clusterBench: Benchmark = {
  summary: "cluster: hand-over time after kill -9 and SIGTERM of a runner (median), scheduling overhead per run against a single daemon",
  usage: "cluster [--rounds 5] [--runs 5] [--lease 10] [--steps 60]",
  options: ["rounds", "runs", "lease", "steps"],
  run: async (options: Options) => {
    const rounds = intOption(options, "rounds", 5)
    const runs = intOption(options, "runs", 5)
    const lease = intOption(options, "lease", 10)
    const steps = intOption(options, "steps", 60)
    const machine = machineInfo()
    const tmp = mkdtempSync(join(tmpdir(), "simmer-bench-cluster-"))
    const pg = await startPostgres()
    const live: Array<RunnerProcess | DaemonProcess> = []
    try {
      await Effect.runPromise(writeTinyRunInputs(tmp))
      const longPlan = tinyPlan("model", { iterations: 2, steps })
      const shortPlan = tinyPlan("model", { iterations: 1, steps: 1 })
      writeFileSync(join(tmp, "plan.yaml"), longPlan)

      // Hand-over: one run at a time, its runner signalled while it tunes; a fresh runner joins after.
      const data = join(tmp, "handover")
      let runners: Array<RunnerProcess> = await Promise.all([startRunner(data, pg.url, [], lease), startRunner(data, pg.url, [], lease)])
      live.push(...runners)
      const api = await startClusterApi(data, pg.url, [tmp], [], lease)
      live.push(api)
      const handOver: Record<"kill9" | "sigterm", Array<number>> = { kill9: [], sigterm: [] }
      for (const signal of ["SIGKILL", "SIGTERM"] as const) {
        for (let r = 0; r < rounds; r++) {
          const id = await submit(api, longPlan, tmp)
          const dir = join(data, "runs", id)
          await waitUntil(() => loggedEvents(dir).some((e) => e.phase === "pruned" && e.iteration === 1) && holderOf(runners, id) !== undefined, `run ${id} to tune`)
          const victim = holderOf(runners, id)!
          const sent = performance.now()
          victim.child.kill(signal)
          await waitUntil(() => {
            const holder = holderOf(runners, id)
            return holder !== undefined && holder !== victim
          }, `run ${id} to move`)
          const seconds = (performance.now() - sent) / 1000
          handOver[signal === "SIGKILL" ? "kill9" : "sigterm"].push(seconds)
          progress(`${signal} round ${r + 1}/${rounds}: handed over in ${seconds.toFixed(2)} s`)
          await victim.exited
          await waitFinished(api, id)
          const fresh = await startRunner(data, pg.url, [], lease)
          runners = [...runners.filter((x) => x !== victim), fresh]
          live.push(fresh)
        }
      }
      await stopAll(live.splice(0))

      // Scheduling overhead: the same minimal run, one after the other, on a single daemon and on a cluster.
      const latency = async (daemon: DaemonProcess) => {
        const seconds: Array<number> = []
        for (let i = 0; i < runs; i++) {
          const started = performance.now()
          await waitFinished(daemon, await submit(daemon, shortPlan, tmp))
          seconds.push((performance.now() - started) / 1000)
        }
        return seconds
      }
      progress(`scheduling overhead: ${runs} runs on a single daemon`)
      const single = await startDaemonProcess(join(tmp, "single"), [tmp])
      live.push(single)
      const singleSeconds = await latency(single)
      await stopAll(live.splice(0))
      progress(`scheduling overhead: ${runs} runs on a cluster (API + one runner)`)
      const clusterData = join(tmp, "cluster")
      const runner = await startRunner(clusterData, pg.url, [], lease)
      const clusterApi = await startClusterApi(clusterData, pg.url, [tmp], [], lease)
      live.push(runner, clusterApi)
      const clusterSeconds = await latency(clusterApi)
      await stopAll(live.splice(0))

      return {
        benchmark: "cluster",
        machine,
        settings: { rounds, runs, leaseSeconds: lease, tuningSteps: steps, backend: "cpu", model: "tiny test checkpoint" },
        handOverSeconds: {
          kill9: { median: round(median(handOver.kill9), 2), all: handOver.kill9.map((s) => round(s, 2)) },
          sigterm: { median: round(median(handOver.sigterm), 2), all: handOver.sigterm.map((s) => round(s, 2)) }
        },
        submitToFinishedSeconds: {
          singleDaemon: { median: round(median(singleSeconds), 3), all: singleSeconds.map((s) => round(s, 3)) },
          cluster: { median: round(median(clusterSeconds), 3), all: clusterSeconds.map((s) => round(s, 3)) }
        },
        schedulingOverheadPerRunSeconds: round(median(clusterSeconds) - median(singleSeconds), 3)
      }
    } finally {
      await stopAll(live)
      pg.destroy()
      rmSync(tmp, { recursive: true, force: true })
    }
  }
}
