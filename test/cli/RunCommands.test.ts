/**
 * `simmer run` and `simmer resume` as a user meets them (issue 14, items 1-6): one writer per
 * run folder (`run --replace` of a folder in use is refused too), a stop that logs `interrupted` and exits 75, a target that cannot be reached
 * said as such with its own exit code, nothing created for a plan that cannot run (a missing
 * model, one too large for the memory budget), `--replace`, and `resume` on a finished run;
 * a plan's `export: [onnx]` named in the closing lines.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { root, simmer } from "../helpers/cli.ts"
import { unreachablePlan } from "../helpers/plans.ts"
import { tempDir } from "../io/_support.ts"

const tinyPlan = (model: string, steps: number, evaluationExamples = 4) => `
model: ${model}
target: { parameters: 0.6 }
iterations: 2
scorer: activation
data:
  tune: [{ task: arith }]
  calibration: [{ task: arith }]
  evaluate: [{ task: program }]
  calibrationExamples: 8
  evaluationExamples: ${evaluationExamples}
tuner: { steps: ${steps}, batchSize: 4, lr: 0.01, maxSeqLen: 48 }
backend: cpu
`

const events = (dir: string) =>
  existsSync(join(dir, "events.ndjson"))
    ? readFileSync(join(dir, "events.ndjson"), "utf8").trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))
    : []

const waitFor = async (condition: () => boolean, what: string) => {
  for (let i = 0; i < 600 && !condition(); i++) await new Promise((r) => setTimeout(r, 100))
  if (!condition()) throw new Error(`gave up waiting for ${what}`)
}

describe("simmer run and resume", () => {
  it.live("one writer at a time; SIGTERM logs `interrupted` and exits 75; resume finishes; resume of a finished run says so", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyCheckpoint(join(tmp, "model"))
      writeFileSync(join(tmp, "plan.yaml"), tinyPlan("model", 5, 64))
      const dir = join(tmp, "run")
      const first = spawn(process.execPath, [join(root, "bin/simmer.js"), "run", join(tmp, "plan.yaml"), "--out", dir, "--workers", "1"], {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, SIMMER_BACKEND: "cpu" }
      })
      let firstErr = ""
      first.stderr.on("data", (chunk) => (firstErr += chunk))
      const firstExit = new Promise<number | null>((resolve) => first.on("close", resolve))
      yield* Effect.promise(() => waitFor(() => events(dir).some((e) => e.phase === "loaded"), "the first run to start"))
      // Paused while it evaluates the original, so it is still at work whatever the machine's speed.
      first.kill("SIGSTOP")

      // A second writer is refused, naming the one at work: a resume, and a run that would replace the folder.
      const logged = readFileSync(join(dir, "events.ndjson"), "utf8")
      const [second, replacing] = yield* Effect.promise(() =>
        Promise.all([
          simmer(["resume", dir, "--workers", "1"]),
          simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--replace", "--workers", "1"])
        ])
      )
      expect(second.status).toBe(1)
      expect(second.stderr).toContain(`in use by another simmer process (pid ${first.pid}`)
      expect(replacing.status).toBe(1)
      expect(replacing.stderr).toContain(`in use by another simmer process (pid ${first.pid}`)
      expect(readFileSync(join(dir, "events.ndjson"), "utf8")).toBe(logged)

      // SIGTERM (delivered as it wakes): the run stops at the next step boundary, logs why, and exits with 75.
      first.kill("SIGTERM")
      first.kill("SIGCONT")
      expect(yield* Effect.promise(() => firstExit)).toBe(75)
      expect(firstErr).toContain(`simmer resume ${dir}`)
      const stopped = events(dir).at(-1)
      expect(stopped.phase).toBe("interrupted")
      expect(readFileSync(join(dir, "report.html"), "utf8")).toContain(`interrupted — <code>simmer resume ${dir}</code>`)
      expect(existsSync(join(dir, "lock"))).toBe(false)

      const resumed = yield* Effect.promise(() => simmer(["resume", dir, "--workers", "1"]))
      expect(resumed.status, resumed.stderr).toBe(0)
      expect(resumed.stdout).toContain(`checkpoint ${join(dir, "stages", "ptl-002")}`)
      const result = JSON.parse(readFileSync(join(dir, "result.json"), "utf8"))
      expect(result.strategies.ptl).toMatchObject({ checkpoint: "stages/ptl-002", targetReached: true })
      expect(JSON.parse(readFileSync(join(dir, "accepted.json"), "utf8")).ptl.stage).toBe("stages/ptl-002")

      const again = yield* Effect.promise(() => simmer(["resume", dir]))
      expect(again.status).toBe(0)
      expect(again.stderr).toContain("already finished")
      expect(events(dir).filter((e) => e.phase === "finished")).toHaveLength(1)
    }), 300_000)

  it.live("a run that cannot reach its target says so and exits with 3", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      writeFileSync(join(tmp, "plan.yaml"), unreachablePlan("stop"))
      const dir = join(tmp, "run")
      const run = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--workers", "1"]))
      expect(run.status, run.stderr).toBe(3)
      expect(run.stdout).toContain("target not reached: stopped at 100.0% of the original's non-embedding parameters")
      const finished = events(dir).find((e) => e.phase === "finished")
      expect(finished).toMatchObject({ targetReached: false })
      expect(JSON.parse(readFileSync(join(dir, "result.json"), "utf8")).strategies.ptl.targetReached).toBe(false)
      expect(readFileSync(join(dir, "report.html"), "utf8")).toContain("target not reached")
    }), 300_000)

  it.live("a run that fails leaves a record: a failed event, result.json, the report, its own exit code; a resumed failure is a row of its own", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      writeFileSync(join(tmp, "plan.yaml"), unreachablePlan("fail"))
      const dir = join(tmp, "run")
      const run = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--workers", "1"]))
      expect(run.status, run.stderr).toBe(4)
      // The message names the real checkpoint, in stages/.
      expect(run.stderr).toContain(`simmer: No pruning step passed the gates at iteration 1 after 1 attempts; the last accepted checkpoint is ${join(dir, "stages", "ptl-000")}.`)
      expect(run.stdout).toContain(`report: ${join(dir, "report.html")}`)
      const failed = events(dir).at(-1)
      expect(failed).toMatchObject({ phase: "failed", strategy: "ptl", iteration: 1, checkpoint: "stages/ptl-000" })
      expect(failed.message).toContain("No pruning step passed the gates")
      expect(JSON.parse(readFileSync(join(dir, "result.json"), "utf8")).strategies.ptl).toMatchObject({
        checkpoint: "stages/ptl-000",
        status: "failed",
        targetReached: false,
        share: 1
      })
      expect(readFileSync(join(dir, "report.html"), "utf8")).toContain("<b>failed</b>")
      const report = yield* Effect.promise(() => simmer(["report", dir]))
      expect(report.stdout).toContain("ptl: failed, 100.0% of the non-embedding parameters")

      // Resumed, it tries again and fails again: two attempts, two rows, each failed.
      const again = yield* Effect.promise(() => simmer(["resume", dir, "--workers", "1"]))
      expect(again.status, again.stderr).toBe(4)
      expect(readFileSync(join(dir, "report.html"), "utf8").match(/<tr class="failed">/g)).toHaveLength(2)
    }), 300_000)

  it.live("mixed units with a scorer each: events and report count neurons and key/value groups apart", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyCheckpoint(join(tmp, "model"))
      writeFileSync(
        join(tmp, "plan.yaml"),
        tinyPlan("model", 1).replace("scorer: activation", "unit: [neurons, heads]\nscorer: { neurons: wanda, heads: contribution }").replace("iterations: 2", "iterations: 1")
      )
      const dir = join(tmp, "run")
      const run = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--workers", "1"]))
      expect(run.status, run.stderr).toBe(0)
      const pruned = events(dir).find((e) => e.phase === "pruned").pruned
      expect(pruned.perUnit.heads).toBe(2)
      expect(pruned.perUnit.neurons).toBeGreaterThan(0)
      // The neurons are counted as neurons: key/value groups are not added to them.
      expect(pruned).toMatchObject({ unit: "neurons", removed: pruned.perUnit.neurons })
      expect(readFileSync(join(dir, "report.html"), "utf8")).toContain(`${pruned.perUnit.neurons} neurons and 2 key/value groups`)
    }), 300_000)

  it.live("a plan with export: [onnx] ends by saying where the exported stages are", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyCheckpoint(join(tmp, "model"))
      writeFileSync(join(tmp, "plan.yaml"), tinyPlan("model", 1).replace("iterations: 2", "iterations: 1") + "export: [onnx]\n")
      const dir = join(tmp, "run")
      const run = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--workers", "1"]))
      expect(run.status, run.stderr).toBe(0)
      expect(run.stdout).toContain(`onnx: every accepted stage in ${join(dir, "onnx")}/<stage>/`)
      for (const stage of ["ptl-000", "ptl-001"]) expect(existsSync(join(dir, "onnx", stage, "model.onnx"))).toBe(true)
    }), 300_000)

  it.live("nothing is created for a plan that cannot run; --replace starts a folder over", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyCheckpoint(join(tmp, "model"))
      const dir = join(tmp, "run")
      writeFileSync(join(tmp, "missing.yaml"), tinyPlan("no-such-model", 1))
      writeFileSync(join(tmp, "plan.yaml"), tinyPlan("model", 1))
      const [missing, tooLarge] = yield* Effect.promise(() =>
        Promise.all([
          simmer(["run", join(tmp, "missing.yaml"), "--out", dir]),
          simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--memory", "0.0001"])
        ])
      )
      expect(missing.status).toBe(1)
      expect(missing.stderr).toContain(join(tmp, "no-such-model"))
      expect(tooLarge.status).toBe(1)
      // Its peak is scoring: evaluating 2 examples a dataset decodes 2 sequences at a time, not 64.
      expect(tooLarge.stderr).toMatch(/needs about \d+\.\d MiB of host memory at its peak \(scoring: scoring pass, one block .*\), but the budget is 105 KiB\. Lower tuner\.maxSeqLen/)
      expect(existsSync(dir)).toBe(false)

      const made = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--workers", "1"]))
      expect(made.status, made.stderr).toBe(0)
      const refused = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir]))
      expect(refused.status).toBe(1)
      expect(refused.stderr).toContain("--replace")
      const replaced = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--replace", "--workers", "1"]))
      expect(replaced.status, replaced.stderr).toBe(0)
      expect(events(dir).filter((e) => e.phase === "loaded")).toHaveLength(1)
    }), 300_000)
})
