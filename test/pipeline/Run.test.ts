/**
 * The whole run on a tiny model (cpu backend, the reference): events, checkpoints with
 * manifests, baselines, no tensor leaks, exact resume after interruptions at arbitrary tuning
 * steps, corrupt checkpoints, and a NaN loss.
 */
import { describe, expect, it } from "@effect/vitest"
import { fileURLToPath } from "node:url"
import * as tf from "@tensorflow/tfjs"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Stream } from "effect"
import { readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { disposeParams } from "../../src/model/Params.ts"
import { verifyManifest } from "../../src/io/Manifest.ts"
import { bundledModelPath, parsePlan, type Plan } from "../../src/pipeline/Plan.ts"
import { comparison } from "../../src/report/Comparison.ts"
import { readEvents } from "../../src/io/EventLog.ts"
import { buildModel } from "../../src/report/ReportModel.ts"
import { progressOfLog } from "../../src/server/Progress.ts"
import { preflight } from "../../src/pipeline/Preflight.ts"
import { runUpdates } from "../../src/pipeline/Run.ts"
import { RunStore } from "../../src/services/RunStore.ts"
import { FileSystemError } from "../../src/io/Errors.ts"
import { splitOf } from "../../src/tasks/Task.ts"
import { DeviceMemory, makeDeviceMemory } from "../../src/services/DeviceMemory.ts"
import type { RunEvent } from "../../src/io/RunEvent.ts"
import { localGradients, planReward, useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { unreachablePlan } from "../helpers/plans.ts"
import { tempDir } from "../io/_support.ts"
import { Datasets } from "../../src/services/Datasets.ts"

beforeAll(() => useBackend("cpu"))

const planText = (model: string, extra = "", lr = 0.01) => `
model: ${model}
target: { parameters: 0.6 }
iterations: 2
scorer: activation
data:
  tune: [{ task: arith }, { task: program }]
  calibration: [{ task: arith }]
  evaluate: [{ task: program }]
  calibrationExamples: 8
  evaluationExamples: 4
tuner: { steps: 3, batchSize: 4, lr: ${lr}, maxSeqLen: 48 }
baselines: [one-shot]
backend: cpu
${extra}`

/** Device memory for tests: as much as the host would give. */
const testMemory = Layer.effect(DeviceMemory, makeDeviceMemory("host memory", 8 * 2 ** 30))

/**
 * Runs (or resumes) the plan in `dir` and returns the events it logged; `stopAfter` asks it to
 * stop once that many tuning steps were taken (as SIGTERM does through the CLI).
 */
const run = (dir: string, model: string, options: { stopAfter?: number; extra?: string; lr?: number } = {}) =>
  Effect.gen(function*() {
    const plan = yield* parsePlan(planText(model, options.extra ?? "", options.lr ?? 0.01), "plan.yaml")
    let steps = 0
    const stopRequested = Effect.sync(() => options.stopAfter !== undefined && steps >= options.stopAfter)
    return yield* runPlan(dir, plan, model, stopRequested, Effect.sync(() => steps++))
  })

/** Runs a parsed plan in `dir` and returns the whole event log (earlier sessions' events included). */
const runPlan = (dir: string, plan: Plan, model: string, stopRequested: Effect.Effect<boolean> = Effect.succeed(false), onStep: Effect.Effect<unknown> = Effect.void) =>
  Stream.runDrain(
    runUpdates({ plan, modelPath: model, stopRequested }).pipe(Stream.tap((u) => (u._tag === "Step" ? onStep : Effect.void)))
  ).pipe(
    Effect.andThen(readEvents(join(dir, "events.ndjson"))),
    Effect.provide(Layer.mergeAll(RunStore.layerFolder(dir), Datasets.layer, localGradients, testMemory, planReward(plan)))
  )

const finalStageBytes = (dir: string, events: ReadonlyArray<RunEvent>) =>
  Effect.promise(() =>
    Promise.all(events.filter((e) => e.phase === "finished").map((e) => readFile(join(dir, e.checkpoint!, "model.safetensors"))))
  )

describe("a run", () => {
  it.live("reaches the target with checkpoints that verify, runs the baseline, and leaks no tensors", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const before = tf.memory().numTensors
      const events = yield* run(join(tmp, "run"), model)
      expect(tf.memory().numTensors).toBe(before)
      const finished = events.filter((e) => e.phase === "finished")
      expect(finished.map((e) => e.strategy)).toEqual(["ptl", "one-shot"])
      const original = events[0].parameters.nonEmbedding
      for (const e of finished) expect(e.parameters.nonEmbedding).toBeLessThanOrEqual(0.6 * original)
      expect(events.filter((e) => e.strategy === "ptl" && e.phase === "accepted").map((e) => e.iteration)).toEqual([0, 1, 2])
      for (const e of events.filter((e) => e.phase === "accepted")) yield* verifyManifest(join(tmp, "run", e.checkpoint!))
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i))
    }), 120_000)

  it.live("with global allocation, layers end at different widths, recorded in the checkpoints, which reload", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const events = yield* run(join(tmp, "run"), model, { extra: "allocation: global" })
      const finished = events.find((e) => e.strategy === "ptl" && e.phase === "finished")!
      expect(finished.parameters.nonEmbedding).toBeLessThanOrEqual(0.6 * events[0].parameters.nonEmbedding)
      // The loop steers by the total over layers: it stops at the target after the planned
      // iterations, at the same size one-shot reaches (an MLP neuron costs the same in every layer).
      expect(events.filter((e) => e.strategy === "ptl" && e.phase === "accepted").map((e) => e.iteration)).toEqual([0, 1, 2])
      const oneShot = events.find((e) => e.strategy === "one-shot" && e.phase === "finished")!
      expect(finished.parameters.nonEmbedding).toBe(oneShot.parameters.nonEmbedding)
      const loaded = yield* loadCheckpoint(join(tmp, "run", finished.checkpoint!))
      const widths = loaded.config.layers.map((l) => l.intermediateSize)
      expect(new Set(widths).size).toBeGreaterThan(1)
      const json = JSON.parse(yield* Effect.promise(() => readFile(join(tmp, "run", finished.checkpoint!, "config.json"), "utf8")))
      expect(json.layer_shapes.map((l: { intermediate_size: number }) => l.intermediate_size)).toEqual(widths)
      expect(json.intermediate_size).toBe(Math.max(...widths))
      disposeParams(loaded.config, loaded.params)
    }), 120_000)

  it.live("stopped at arbitrary tuning steps and resumed, ends with the same weights byte for byte", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const straightDir = join(tmp, "straight")
      const straight = yield* run(straightDir, model)
      // Stop four times: in iteration 1, in iteration 2, after iteration 2's tuning (its last
      // step, before the evaluation), and in the one-shot baseline.
      const resumedDir = join(tmp, "resumed")
      for (const stopAfter of [2, 2, 2, 3]) {
        const events = yield* run(resumedDir, model, { stopAfter })
        expect(events.at(-1)?.phase).toBe("interrupted")
        expect(events.at(-1)?.message).toContain("its state is saved")
      }
      const stops = (yield* readEvents(join(resumedDir, "events.ndjson"))).filter((e) => e.phase === "interrupted")
      expect(stops[2].message).toContain("after tuning, before evaluation")
      const resumed = yield* run(resumedDir, model)
      expect(resumed.some((e) => e.phase === "finished" && e.strategy === "one-shot")).toBe(true)
      // The resumed tunings continued mid-way, and their records count the steps before each
      // stop: every tuning's steps, tokens and losses, the pruning and the stages timed are those
      // of the run never interrupted, and so are the report's, the API's and the demo's spend.
      const records = (events: ReadonlyArray<RunEvent>) =>
        events.filter((e) => ["pruned", "tuned", "evaluated", "accepted", "finished"].includes(e.phase)).map((e) => ({
          at: `${e.strategy} ${e.iteration}.${e.attempt} ${e.phase}`,
          tune: e.tune,
          pruned: e.pruned,
          timed: Object.keys(e.timings ?? {}).sort()
        }))
      expect(records(resumed)).toEqual(records(straight))
      expect(comparison(resumed).map((row) => row.tuningTokens)).toEqual(comparison(straight).map((row) => row.tuningTokens))
      expect(progressOfLog(resumed)?.tuningTokens).toBe(progressOfLog(straight)?.tuningTokens)
      const tuningTokens = (events: ReadonlyArray<RunEvent>) => buildModel([{ name: "run", events }]).series.map((s) => s.rows.map((r) => r.tunes.reduce((n, t) => n + t.tokens, 0)))
      expect(tuningTokens(resumed)).toEqual(tuningTokens(straight))
      // Iteration 2 was tuned once: resumed after its tuning, it went straight to the evaluation.
      expect(resumed.filter((e) => e.strategy === "ptl" && e.iteration === 2 && e.phase === "tuned")).toHaveLength(1)
      const [a, b] = [yield* finalStageBytes(straightDir, straight), yield* finalStageBytes(resumedDir, resumed)]
      expect(a.length).toBe(2)
      a.forEach((bytes, i) => expect(Buffer.compare(bytes, b[i])).toBe(0))
    }), 240_000)

  it.live("a corrupted checkpoint is detected and resume falls back to the previous one", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const dir = join(tmp, "run")
      // Stop in iteration 2, after iteration 1 was accepted and checkpointed.
      yield* run(dir, model, { stopAfter: 4 })
      const weights = join(dir, "stages", "ptl-001", "model.safetensors")
      const bytes = yield* Effect.promise(() => readFile(weights))
      bytes[bytes.length - 1] ^= 0xff
      yield* Effect.promise(() => writeFile(weights, bytes))
      const failure = yield* Effect.flip(verifyManifest(join(dir, "stages", "ptl-001")))
      expect(failure.message).toContain("sha256")
      const events = yield* run(dir, model)
      // Iteration 1 was redone from the original after the fallback, and the run completed.
      const ptlAccepted = events.filter((e) => e.strategy === "ptl" && e.phase === "accepted").map((e) => e.iteration)
      expect(ptlAccepted).toEqual([0, 1, 1, 2])
      yield* verifyManifest(join(dir, "stages", "ptl-001"))
    }), 180_000)

  it.live("no tensor outlives a run that succeeds, is stopped, is interrupted, fails a gate, or hits a NaN loss", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const before = tf.memory().numTensors
      // (a) succeeds
      yield* run(join(tmp, "a"), model)
      expect(tf.memory().numTensors).toBe(before)
      // (b) stopped mid-tuning (SIGTERM), and interrupted outright mid-tuning (a second Ctrl-C, a daemon's cancel)
      yield* run(join(tmp, "b"), model, { stopAfter: 2 })
      expect(tf.memory().numTensors).toBe(before)
      // Interrupted once its first tuning step is done (a fixed sleep raced a run that can finish in under 1.5 s).
      const tuning = yield* Deferred.make<void>()
      const plan = yield* parsePlan(planText(model, "", 0.01), "plan.yaml")
      const fiber = yield* Effect.forkChild(runPlan(join(tmp, "b2"), plan, model, Effect.succeed(false), Deferred.succeed(tuning, undefined)))
      yield* Deferred.await(tuning)
      const exit = yield* Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber)))
      expect(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)).toBe(true)
      expect(tf.memory().numTensors).toBe(before)
      // (c) a failed gate with onFailure: fail
      const broken = yield* parsePlan(unreachablePlan("fail"), "plan.yaml")
      const gate = yield* Effect.flip(runPlan(join(tmp, "c"), broken, bundledModelPath))
      expect(gate._tag).toBe("GateFailed")
      expect(tf.memory().numTensors).toBe(before)
      // (d) a NaN loss
      const nan = yield* Effect.flip(run(join(tmp, "d"), model, { lr: 1e9 }))
      expect(nan._tag).toBe("NonFiniteLoss")
      expect(tf.memory().numTensors).toBe(before)
    }), 240_000)

  it.live("a NaN loss surfaces as a typed error and leaves the run folder valid", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const dir = join(tmp, "run")
      // A learning rate of 1e9 blows the weights up after one update: the next loss is not finite.
      const failure = yield* Effect.flip(run(dir, model, { lr: 1e9 }))
      expect(failure._tag).toBe("NonFiniteLoss")
      const events = yield* Effect.promise(() => readFile(join(dir, "events.ndjson"), "utf8"))
      const parsed = events.trim().split("\n").map((line) => JSON.parse(line) as RunEvent)
      // The failure is logged after the iteration's last state, with the error.
      expect(parsed.map((e) => e.phase).slice(-2)).toEqual(["pruned", "failed"])
      expect(parsed.at(-1)?.message).toBe(failure.message)
      yield* verifyManifest(join(dir, "stages", "ptl-000"))
    }), 60_000)

  it.live("a stop whose state cannot be saved says so, and resume restarts the iteration from the accepted checkpoint", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const dir = join(tmp, "run")
      const plan = yield* parsePlan(planText(model, "", 0.01), "plan.yaml")
      // A full disk at the moment of preemption.
      const fullDisk = Layer.effect(
        RunStore,
        Effect.map(RunStore, (store) => ({
          ...store,
          saveResume: () => Effect.fail(new FileSystemError({ path: join(dir, "resume"), message: "No space left on device" }))
        }))
      ).pipe(Layer.provide(RunStore.layerFolder(dir)))
      let steps = 0
      yield* Stream.runDrain(
        runUpdates({ plan, modelPath: model, stopRequested: Effect.sync(() => steps >= 4) }).pipe(
          Stream.tap((u) => Effect.sync(() => (u._tag === "Step" ? steps++ : 0)))
        )
      ).pipe(Effect.provide(Layer.mergeAll(fullDisk, Datasets.layer, localGradients, testMemory, planReward(plan))))
      const stopped = (yield* readEvents(join(dir, "events.ndjson"))).at(-1)!
      expect(stopped.phase).toBe("interrupted")
      expect(stopped.message).toContain("could not be saved (No space left on device)")
      expect(stopped.message).toContain("restarts iteration 2 from it")
      const events = yield* run(dir, model)
      expect(events.filter((e) => e.strategy === "ptl" && e.phase === "pruned").map((e) => e.iteration)).toEqual([1, 2, 2])
      expect(events.filter((e) => e.phase === "finished").map((e) => e.strategy)).toEqual(["ptl", "one-shot"])
    }), 120_000)

  it.live("tuning data without a training example is refused before anything runs, naming the file", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      // Questions whose prompt hash puts them all in the test split.
      const questions = Array.from({ length: 200 }, (_, i) => `What is ${i} + 1?`).filter((q) => splitOf(q) === "test").slice(0, 3)
      const file = join(tmp, "tiny.jsonl")
      yield* Effect.promise(() => writeFile(file, questions.map((q) => JSON.stringify({ question: q, answer: "#### 1" })).join("\n") + "\n"))
      const plan = yield* parsePlan(planText(model).replace("tune: [{ task: arith }, { task: program }]", `tune: [{ file: ${file} }]`), "plan.yaml")
      const error = yield* Effect.flip(preflight(plan, model, "tfjs").pipe(Effect.provide(Layer.mergeAll(Datasets.layer, testMemory))))
      expect(error._tag).toBe("NoTrainingData")
      expect(error.message).toContain(file)
    }), 60_000)

  it.live("a reward model given as the model to compress is refused before anything runs", () =>
    Effect.gen(function*() {
      const rewardModel = fileURLToPath(new URL("../fixtures/hf-llama-reward-f32", import.meta.url))
      const plan = yield* parsePlan(planText(rewardModel), "plan.yaml")
      const error = yield* Effect.flip(preflight(plan, rewardModel, "tfjs").pipe(Effect.provide(Layer.mergeAll(Datasets.layer, testMemory))))
      expect(error._tag).toBe("UnsupportedModel")
      expect(error.message).toContain("reward model")
    }))
})
