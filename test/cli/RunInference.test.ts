/**
 * `--inference ort` on a run (issue 22): the loop's evaluation decodes on ONNX Runtime, with a
 * session built from the candidate's tfjs tensors at each evaluation, and logs exactly the
 * accuracies tfjs logs, and its perplexities within 1e-5; evaluating that way leaves no tfjs
 * tensor behind.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { disposeCheckpoint, loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { loadTokenizer } from "../../src/io/Tokenizer.ts"
import { evaluateModel, type EvaluationSetup } from "../../src/pipeline/Evaluation.ts"
import { bundledModelPath } from "../../src/pipeline/Plan.ts"
import { Datasets } from "../../src/services/Datasets.ts"
import { useBackend } from "../helpers/backend.ts"
import { simmer } from "../helpers/cli.ts"
import { tinyPlan } from "../helpers/daemon.ts"
import { tempDir } from "../io/_support.ts"
import { unlimitedRoom } from "../helpers/room.ts"

beforeAll(() => useBackend("wasm"))

/** The tiny plan on the bundled model (so accuracies are not all zero), evaluated on two graded tasks. */
const plan = tinyPlan(bundledModelPath)
  .replace("evaluate: [{ task: program }]", "evaluate: [{ task: arith }, { task: program }]")
  .replace("evaluationExamples: 2", "evaluationExamples: 16")
  .replace("backend: cpu", "backend: wasm")

const loggedMetrics = (dir: string) =>
  readFileSync(join(dir, "events.ndjson"), "utf8").trim().split("\n").map((line) => JSON.parse(line))
    .filter((e) => e.metrics !== undefined && e.phase !== "tuning")
    .map((e) => ({ strategy: e.strategy, iteration: e.iteration, phase: e.phase, metrics: e.metrics }))

describe("run --inference", () => {
  it.effect("ort (auto beside wasm) logs the same metrics as tfjs in every event", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      writeFileSync(join(tmp, "plan.yaml"), plan)
      const runs: Record<string, ReturnType<typeof loggedMetrics>> = {}
      for (const [engine, flags] of [["tfjs", ["--inference", "tfjs"]], ["ort", []]] as const) {
        const dir = join(tmp, engine)
        const ran = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--workers", "1", ...flags]))
        expect(ran.status, ran.stderr).toBe(0)
        expect(JSON.parse(readFileSync(join(dir, "run.json"), "utf8")).inference).toBe(engine)
        runs[engine] = loggedMetrics(dir)
      }
      // The original and a pruned candidate, on both tasks, with accuracies that are not all the same.
      expect(runs.tfjs.some((e) => e.iteration === 0 && e.phase === "evaluated")).toBe(true)
      expect(runs.tfjs.some((e) => e.iteration === 1 && e.phase === "evaluated")).toBe(true)
      expect(new Set(runs.tfjs.map((e) => e.metrics.arith.accuracy)).size).toBeGreaterThan(1)
      expect(runs.ort).toEqual(runs.tfjs)
    }), 60_000)

  it.effect("SIMMER_INFERENCE chooses when the flag does not, and a value that is not an engine is refused", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      writeFileSync(join(tmp, "plan.yaml"), plan)
      const dir = join(tmp, "run")
      const ran = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", dir, "--workers", "1"], { env: { SIMMER_INFERENCE: "tfjs" } }))
      expect(ran.status, ran.stderr).toBe(0)
      expect(JSON.parse(readFileSync(join(dir, "run.json"), "utf8")).inference).toBe("tfjs")
      const bad = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", join(tmp, "bad")], { env: { SIMMER_INFERENCE: "onnx" } }))
      expect(bad.status).not.toBe(0)
      expect(bad.stderr).toContain("SIMMER_INFERENCE")
    }), 60_000)

  it.effect("evaluating on ONNX Runtime leaves no tensor behind and agrees with tfjs, perplexity included", () =>
    Effect.gen(function*() {
      const model = yield* loadCheckpoint(bundledModelPath)
      const datasets = yield* Datasets
      const tokenizer = yield* loadTokenizer(bundledModelPath)
      // A text dataset between two graded ones: each kind has its own session, the metrics keep the plan's order.
      const open = [yield* datasets.open({ task: "arith" }), yield* datasets.open({ task: "general" }), yield* datasets.open({ task: "program" })]
      const setup = (inference: "tfjs" | "ort"): EvaluationSetup => ({ tokenizer, datasets: open, examples: 8, batchSize: 4, maxSeqLen: 128, inference, room: unlimitedRoom })
      const state = { strategy: "ptl", iteration: 0, attempt: 0, phase: "loaded", model, timings: {} } as const
      const viaTfjs = yield* evaluateModel(setup("tfjs"), state)
      const once = yield* evaluateModel(setup("ort"), state)
      const before = tf.memory().numTensors
      for (let i = 0; i < 3; i++) expect(yield* evaluateModel(setup("ort"), state)).toEqual(once)
      expect(tf.memory().numTensors).toBe(before)
      // All of it on ONNX Runtime: not one tfjs kernel (the weights are only read).
      const profile = yield* Effect.promise(() => tf.profile(() => Effect.runPromise(evaluateModel(setup("ort"), state)).then(() => [])))
      expect(profile.kernels.map((k) => k.name)).toEqual([])
      expect(Object.keys(once)).toEqual(["arith", "general", "program"])
      const { general, ...graded } = once
      const { general: generalTfjs, ...gradedTfjs } = viaTfjs
      expect(graded).toEqual(gradedTfjs)
      expect(general.examples).toBe(generalTfjs.examples)
      expect(Math.abs(general.perplexity! / generalTfjs.perplexity! - 1)).toBeLessThan(1e-5)
      disposeCheckpoint(model)
    }).pipe(Effect.provide(Datasets.layer)), 60_000)
})
