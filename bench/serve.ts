/**
 * The daemon's cost: one plan that tunes the bundled model (one iteration, --steps tuning
 * steps), run in turn under `simmer run`, under `simmer serve` alone, and under `simmer serve`
 * while --watchers SSE clients follow it and one client polls `GET /v1/runs/{id}` (each a child
 * process, as a user starts them), --rounds times each. It reports that request's latency
 * (p50/p99, goal p99 <= 50 ms) while the run tunes and evaluates, how long logged events take
 * to reach the watchers (receipt time minus the event's own `time`, written just before it is
 * logged; goal p99 <= 100 ms), and the tuning throughput (tokens per second of tuning, from the
 * `tuned` event) of each, with the daemon's slowdown against `simmer run` (goal: at most 3%).
 * Then two runs of the plan on one daemon, one after the other (--concurrency 1) and side by
 * side (--concurrency 2), each with one gradient thread: goal, side by side in <= 0.6x the time. The watchers and the poller run in this process, on the same cores as the
 * run they watch, so "with watchers" also counts what those clients cost the machine.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Benchmark, intOption, machineInfo, median, type Options, progress, round } from "./common.ts"

const simmer = fileURLToPath(new URL("../bin/simmer.js", import.meta.url))

const planText = (steps: number) => `
model: base
target: { parameters: 0.8 }
iterations: 1
scorer: wanda
data:
  tune: [{ task: arith, seed: 1 }]
  calibration: [{ task: arith, seed: 1 }]
  evaluate: [{ task: arith, seed: 1 }]
  calibrationExamples: 32
  evaluationExamples: 16
tuner: { kind: sft, steps: ${steps}, batchSize: 32, lr: 0.0003 }
seed: 1
`

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

const latencyStats = (ms: ReadonlyArray<number>) => ({ n: ms.length, p50Ms: round(percentile(ms, 0.5), 2), p99Ms: round(percentile(ms, 0.99), 2) })

/** Tuning tokens per second of the run in `dir`, from its `tuned` event. */
const tuningRate = (dir: string) => {
  const events = readFileSync(join(dir, "events.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
  const tuned = events.find((e) => e.phase === "tuned")
  if (tuned?.tune === undefined || tuned.timings?.tune === undefined) throw new Error(`${dir} logged no tuning`)
  return tuned.tune.tokens / tuned.timings.tune
}

const exitOf = (child: ReturnType<typeof spawn>) => new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))

const runLocally = async (dir: string, planPath: string, workers: number) => {
  const child = spawn(process.execPath, [simmer, "run", planPath, "--out", join(dir, "run"), "--workers", String(workers)], { stdio: ["ignore", "ignore", "inherit"] })
  const code = await exitOf(child)
  if (code !== 0) throw new Error(`simmer run exited with ${code}`)
  return tuningRate(join(dir, "run"))
}

const runUnderDaemon = async (dir: string, plan: string, workers: number, watchers: number, poll: boolean) => {
  const { rates, latencies, delays } = await runManyUnderDaemon(dir, [plan], workers, 1, watchers, poll)
  return { rate: rates[0], latencies, delays }
}

/**
 * Submits `plans` at once to a daemon running `concurrency` runs at a time and waits for all of
 * them; returns each run's tuning rate, the latencies and delays seen while they ran, and the
 * seconds from the first submission to the last run's end.
 */
const runManyUnderDaemon = async (dir: string, plans: ReadonlyArray<string>, workers: number, concurrency: number, watchers: number, poll: boolean) => {
  const child = spawn(
    process.execPath,
    [simmer, "serve", "--data", join(dir, "data"), "--port", "0", "--workers", String(workers), "--concurrency", String(concurrency)],
    { stdio: ["ignore", "ignore", "pipe"] }
  )
  const url = await new Promise<string>((resolve, reject) => {
    let log = ""
    child.stderr!.on("data", (chunk) => {
      log += chunk
      process.stderr.write(chunk)
      const match = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)
      if (match) resolve(match[1])
    })
    child.on("exit", (code) => reject(new Error(`simmer serve exited (${code}) before listening`)))
  })
  try {
    const started = performance.now()
    const ids: Array<string> = []
    for (const plan of plans) {
      const submitted = await fetch(`${url}/v1/runs`, { method: "POST", body: plan, headers: { "content-type": "application/yaml" } })
      ids.push(((await submitted.json()) as { id: string }).id)
    }
    const id = ids[0]
    const delays: Array<number> = []
    const follow = async () => {
      const response = await fetch(`${url}/v1/runs/${id}/events`)
      const reader = response.body!.getReader()
      const decoder = new TextDecoder()
      let buffer = ""
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        const now = Date.now()
        buffer += decoder.decode(value, { stream: true })
        let end
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          if (!block.includes("event: state")) continue
          const data = JSON.parse(block.slice(block.indexOf("data: ") + 6))
          delays.push(now - Date.parse(data.time))
        }
      }
    }
    const following = Promise.all(Array.from({ length: watchers }, follow))
    const latencies: Array<number> = []
    for (const each of ids) {
      for (;;) {
        const asked = performance.now()
        const reply = await fetch(`${url}/v1/runs/${each}`)
        const body = (await reply.json()) as { status: string }
        // Only requests answered while the run computes (tunes or evaluates) count: that is the load the goal is about.
        if (poll && body.status === "running") latencies.push(performance.now() - asked)
        if (["finished", "failed", "cancelled"].includes(body.status)) break
        await new Promise((r) => setTimeout(r, poll ? 50 : 200))
      }
    }
    const seconds = (performance.now() - started) / 1000
    await following
    return { rates: ids.map((each) => tuningRate(join(dir, "data", "runs", each))), latencies, delays, seconds }
  } finally {
    child.kill("SIGTERM")
    await exitOf(child)
  }
}

export const serveBench: Benchmark = {
  summary: "API latency and event delay with SSE watchers while a run trains; tuning throughput under simmer run, the daemon alone and watched",
  usage: "serve [--steps 60] [--rounds 2] [--watchers 50] [--workers 2]",
  options: ["steps", "rounds", "watchers", "workers"],
  run: async (options: Options) => {
    const steps = intOption(options, "steps", 60)
    const rounds = intOption(options, "rounds", 2)
    const watchers = intOption(options, "watchers", 50)
    const workers = intOption(options, "workers", 2)
    const machine = machineInfo()
    const plan = planText(steps)
    const local: Array<number> = []
    const alone: Array<number> = []
    const daemon: Array<number> = []
    const latencies: Array<number> = []
    const delays: Array<number> = []
    const oneAfterAnother: Array<number> = []
    const sideBySide: Array<number> = []
    for (let round_ = 0; round_ < rounds; round_++) {
      const dir = mkdtempSync(join(tmpdir(), "simmer-bench-serve-"))
      try {
        writeFileSync(join(dir, "plan.yaml"), plan)
        progress(`round ${round_ + 1}/${rounds}: simmer run`)
        local.push(await runLocally(dir, join(dir, "plan.yaml"), workers))
        progress(`round ${round_ + 1}/${rounds}: simmer serve alone`)
        alone.push((await runUnderDaemon(join(dir, "alone"), plan, workers, 0, false)).rate)
        progress(`round ${round_ + 1}/${rounds}: simmer serve with ${watchers} watchers`)
        const served = await runUnderDaemon(join(dir, "watched"), plan, workers, watchers, true)
        daemon.push(served.rate)
        latencies.push(...served.latencies)
        delays.push(...served.delays)
        // Two runs that fit the budget together, each with one thread: one after the other, then side by side.
        progress(`round ${round_ + 1}/${rounds}: two runs one after the other, then side by side`)
        oneAfterAnother.push((await runManyUnderDaemon(join(dir, "sequential"), [plan, plan], 1, 1, 0, false)).seconds)
        sideBySide.push((await runManyUnderDaemon(join(dir, "parallel"), [plan, plan], 1, 2, 0, false)).seconds)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
    const slowdown = 1 - median(alone) / median(local)
    return {
      benchmark: "serve",
      machine,
      plan: { model: "base", iterations: 1, steps, batchSize: 32, workers },
      rounds,
      watchers,
      tuningTokensPerSecond: {
        simmerRun: local.map((x) => round(x)),
        daemonAlone: alone.map((x) => round(x)),
        daemonWithWatchers: daemon.map((x) => round(x)),
        medianSimmerRun: round(median(local)),
        medianDaemonAlone: round(median(alone)),
        medianDaemonWithWatchers: round(median(daemon)),
        daemonSlowdown: round(slowdown, 4),
        slowdownWithWatchers: round(1 - median(daemon) / median(local), 4),
        goalMet: slowdown <= 0.03
      },
      twoRuns: {
        oneAfterAnotherSeconds: oneAfterAnother.map((x) => round(x, 1)),
        sideBySideSeconds: sideBySide.map((x) => round(x, 1)),
        ratio: round(median(sideBySide) / median(oneAfterAnother), 3),
        goalMet: median(sideBySide) / median(oneAfterAnother) <= 0.6
      },
      getRunLatency: { ...latencyStats(latencies), goalMet: percentile(latencies, 0.99) <= 50 },
      eventDeliveryDelay: { ...latencyStats(delays), goalMet: percentile(delays, 0.99) <= 100 },
      loadavgAfter: machineInfo().loadavg
    }
  }
}
