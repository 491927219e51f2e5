/**
 * The whole run on a tiny model (cpu backend, the reference): events, checkpoints with
 * manifests, baselines, no tensor leaks, exact resume after interruptions at arbitrary tuning
 * steps, corrupt checkpoints, and a NaN loss.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Cause, Effect, Exit, Fiber, Layer } from "effect"
import { readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { DatasetsLive } from "../../layers/Datasets.ts"
import { RunStoreLive } from "../../layers/RunStore.ts"
import { loadCheckpoint } from "../../src/io/Checkpoint.ts"
import { disposeParams } from "../../src/model/Params.ts"
import { verifyManifest } from "../../src/io/Manifest.ts"
import { parsePlan } from "../../src/pipeline/Plan.ts"
import { executeRun } from "../../src/pipeline/Run.ts"
import type { RunEvent } from "../../src/io/RunEvent.ts"
import { localGradients } from "../../src/tune/Trainer.ts"
import { useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { tempDir } from "../io/_support.ts"

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

const run = (dir: string, model: string, onTuneStep?: () => void, extra = "", lr = 0.01) =>
  Effect.gen(function*() {
    const plan = yield* parsePlan(planText(model, extra, lr), "plan.yaml")
    return yield* executeRun({ plan, modelPath: model, gradients: localGradients, ...(onTuneStep ? { onTuneStep } : {}) }).pipe(
      Effect.provide(Layer.mergeAll(RunStoreLive(dir), DatasetsLive))
    )
  })

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
      const events = yield* run(join(tmp, "run"), model, undefined, "allocation: global")
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

  it.live("interrupted at arbitrary tuning steps and resumed, ends with the same weights byte for byte", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const straightDir = join(tmp, "straight")
      const straight = yield* run(straightDir, model)
      // Interrupt three times: in iteration 1, in iteration 2, and in the one-shot baseline.
      const resumedDir = join(tmp, "resumed")
      for (const stopAt of [2, 2, 3]) {
        let steps = 0
        let stop: () => void = () => {}
        const stopped = new Promise<void>((resolve) => (stop = resolve))
        const fiber = yield* Effect.forkChild(run(resumedDir, model, () => {
          if (++steps === stopAt) stop()
        }))
        yield* Effect.race(Effect.promise(() => stopped), Fiber.await(fiber))
        const exit = yield* Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber)))
        expect(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)).toBe(true)
      }
      const resumed = yield* run(resumedDir, model)
      expect(resumed.some((e) => e.phase === "finished" && e.strategy === "one-shot")).toBe(true)
      // The resumed tunings continued mid-way (fewer steps logged) instead of starting over.
      const partial = resumed.filter((e) => e.phase === "tuned" && e.tune !== undefined && e.tune.steps < (e.strategy === "ptl" ? 3 : 6))
      // (The interruption lands at the step boundary after the callback, so the exact steps vary.)
      expect(partial.map((e) => `${e.strategy} ${e.iteration}`)).toEqual(["ptl 1", "ptl 2", "one-shot 1"])
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
      let steps = 0
      let stop: () => void = () => {}
      const stopped = new Promise<void>((resolve) => (stop = resolve))
      // Stop in iteration 2, after iteration 1 was accepted and checkpointed.
      const fiber = yield* Effect.forkChild(run(dir, model, () => {
        if (++steps === 4) stop()
      }))
      yield* Effect.promise(() => stopped)
      yield* Fiber.interrupt(fiber)
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

  it.live("a NaN loss surfaces as a typed error and leaves the run folder valid", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const dir = join(tmp, "run")
      // A learning rate of 1e9 blows the weights up after one update: the next loss is not finite.
      const failure = yield* Effect.flip(run(dir, model, undefined, "", 1e9))
      expect(failure._tag).toBe("NonFiniteLoss")
      const events = yield* Effect.promise(() => readFile(join(dir, "events.ndjson"), "utf8"))
      const parsed = events.trim().split("\n").map((line) => JSON.parse(line) as RunEvent)
      expect(parsed.at(-1)?.phase).toBe("pruned")
      yield* verifyManifest(join(dir, "stages", "ptl-000"))
    }), 60_000)
})
