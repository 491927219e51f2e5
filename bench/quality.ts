/**
 * The quality bar of the Prune-Tune Loop: runs the demo (`simmer demo --json`, plans/demo.yaml:
 * PTL on the bundled base model to ≤ 50% of its non-embedding parameters, then one-shot with the
 * same total tuning budget) and reports base accuracy, PTL's accuracy and size at the end, and
 * one-shot's accuracy at its size, against the bar:
 *
 * - PTL keeps ≥ 95% of the base accuracy on every evaluated task,
 * - at ≤ 55% of the non-embedding parameters,
 * - and beats one-shot (higher mean accuracy over the tasks).
 *
 * The demo runs as a child process, exactly as a user runs it; its run folder is kept (`--dir`,
 * default a temporary folder) so the report can be inspected.
 */
import { spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { ComparisonRow as Row } from "../src/cli/DemoCommand.ts"
import { type Benchmark, machineInfo, type Options, progress, round } from "./common.ts"

const simmer = fileURLToPath(new URL("../bin/simmer.js", import.meta.url))

/** Runs `simmer demo --json` and returns its final JSON line (progress and logs pass through to stderr). */
const runDemo = (args: ReadonlyArray<string>): Promise<{ run: string; comparison: Array<Row> }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [simmer, "demo", "--json", ...args], { stdio: ["ignore", "pipe", "inherit"] })
    let stdout = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.on("error", reject)
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`simmer demo exited with ${code}`))
      const last = stdout.trim().split("\n").pop() ?? ""
      try {
        resolve(JSON.parse(last))
      } catch {
        reject(new Error(`simmer demo printed no comparison; its last line was: ${last.slice(0, 200)}`))
      }
    })
  })

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)

export const quality: Benchmark = {
  summary: "runs the demo and checks the PTL quality bar (≥95% of base accuracy at ≤55% of non-embedding params, beats one-shot)",
  usage: "quality [--backend wasm] [--quick] [--dir runs/quality]",
  options: ["backend", "quick", "dir"],
  run: async (options: Options) => {
    const dir = options.get("dir") ?? join(mkdtempSync(join(tmpdir(), "simmer-quality-")), "run")
    const args = ["--out", dir, "--backend", options.get("backend") ?? "wasm", ...(options.has("quick") ? ["--quick"] : [])]
    progress(`quality: simmer demo ${args.join(" ")}`)
    const started = performance.now()
    const { run, comparison } = await runDemo(args)
    const seconds = (performance.now() - started) / 1000
    const row = (strategy: string) => {
      const r = comparison.find((c) => c.strategy === strategy)
      if (r === undefined) throw new Error(`the demo's comparison has no "${strategy}" row`)
      return r
    }
    const base = row("original")
    const ptl = row("ptl")
    const oneShot = row("one-shot")
    const tasks = Object.keys(base.metrics)
    const accuracy = (r: Row) => Object.fromEntries(tasks.map((t) => [t, r.metrics[t] ?? 0]))
    const retained = Object.fromEntries(tasks.map((t) => [t, round((ptl.metrics[t] ?? 0) / Math.max(base.metrics[t] ?? 0, 1e-9), 3)]))
    const meanOf = (r: Row) => mean(tasks.map((t) => r.metrics[t] ?? 0))
    const bar = {
      retainsAccuracy: tasks.every((t) => retained[t] >= 0.95),
      atMost55Percent: ptl.share <= 0.55,
      beatsOneShot: meanOf(ptl) > meanOf(oneShot)
    }
    return {
      benchmark: "quality",
      machine: machineInfo(),
      run,
      demoSeconds: round(seconds),
      base: { nonEmbeddingParameters: base.nonEmbedding, accuracy: accuracy(base) },
      ptl: {
        nonEmbeddingParameters: ptl.nonEmbedding,
        shareOfBase: round(ptl.share, 4),
        accuracy: accuracy(ptl),
        retainedOfBase: retained,
        tuningTokens: ptl.tuningTokens,
        seconds: round(ptl.seconds)
      },
      oneShot: {
        nonEmbeddingParameters: oneShot.nonEmbedding,
        shareOfBase: round(oneShot.share, 4),
        accuracy: accuracy(oneShot),
        tuningTokens: oneShot.tuningTokens,
        seconds: round(oneShot.seconds)
      },
      bar: { ...bar, met: bar.retainsAccuracy && bar.atMost55Percent && bar.beatsOneShot }
    }
  }
}
