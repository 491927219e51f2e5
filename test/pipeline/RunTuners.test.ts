/**
 * Runs whose iterations tune with distillation then GRPO (cpu backend, a tiny model): each
 * tuning logs its own metrics, stopping at arbitrary steps and resuming ends with the same
 * weights byte for byte, and no tensor outlives the run.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer, Stream } from "effect"
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { beforeAll } from "vitest"
import type { RunEvent } from "../../src/io/RunEvent.ts"
import { parsePlan } from "../../src/pipeline/Plan.ts"
import { runUpdates } from "../../src/pipeline/Run.ts"
import { readEvents } from "../../src/io/EventLog.ts"
import { DeviceMemory, makeDeviceMemory } from "../../src/services/DeviceMemory.ts"
import { currentCompute, localGradients, useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { tempDir } from "../io/_support.ts"
import { Datasets } from "../../src/services/Datasets.ts"
import { RewardModel } from "../../src/services/RewardModel.ts"
import { RunStore } from "../../src/services/RunStore.ts"

beforeAll(() => useBackend("cpu"))

const planText = (model: string) => `
model: ${model}
target: { parameters: 0.6 }
iterations: 2
scorer: activation
data:
  tune: [{ task: program }]
  calibration: [{ task: arith }]
  evaluate: [{ task: program }]
  calibrationExamples: 8
  evaluationExamples: 4
tuner:
  - { kind: distill, steps: 2, batchSize: 4, lr: 0.01, maxSeqLen: 48, temperature: 2, alpha: 0.25 }
  - { kind: grpo, steps: 3, prompts: 2, rollouts: 3, maxNewTokens: 4, lr: 0.01, maxSeqLen: 48, temperature: 1.5 }
reward: [{ rule: program, correct: 1, format: 1 }]
baselines: [one-shot]
backend: cpu
`

const layers = (dir: string, reward: Parameters<typeof RewardModel.layer>[0]) =>
  Layer.mergeAll(
    RunStore.layerFolder(dir),
    Datasets.layer,
    localGradients,
    Layer.effect(DeviceMemory, makeDeviceMemory("host memory", 8 * 2 ** 30)),
    RewardModel.layer(reward).pipe(Layer.provide(currentCompute))
  )

/** Runs (or resumes) in `dir`, asking to stop once `stopAfter` tuning steps were taken; returns the event log. */
const run = (dir: string, model: string, stopAfter?: number) =>
  Effect.gen(function*() {
    const plan = yield* parsePlan(planText(model), "plan.yaml")
    let steps = 0
    const stopRequested = Effect.sync(() => stopAfter !== undefined && steps >= stopAfter)
    yield* Stream.runDrain(runUpdates({ plan, modelPath: model, stopRequested }).pipe(
      Stream.tap((u) => Effect.sync(() => (u._tag === "Step" ? steps++ : undefined)))
    )).pipe(Effect.provide(layers(dir, plan.reward ?? [])))
    return yield* readEvents(join(dir, "events.ndjson"))
  })

const finalWeights = (dir: string, events: ReadonlyArray<RunEvent>) =>
  Effect.promise(() =>
    Promise.all(events.filter((e) => e.phase === "finished").map((e) => readFile(join(dir, e.checkpoint!, "model.safetensors"))))
  )

describe("a run that distills, then runs GRPO, in every iteration", () => {
  it.live("logs each tuner's metrics, and resumed after stops at arbitrary steps ends with the same weights", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const before = tf.memory().numTensors
      const straightDir = join(tmp, "straight")
      const straight = yield* run(straightDir, model)
      expect(tf.memory().numTensors).toBe(before)
      const tunings = straight.filter((e) => e.strategy === "ptl" && e.phase === "tuned").map((e) => e.tune!)
      expect(tunings.map((t) => `${t.kind} ${t.steps}`)).toEqual(["distill 2", "grpo 3", "distill 2", "grpo 3"])
      const grpo = tunings[1]
      for (const name of ["reward", "reward.program", "reward.program.correct", "reward.program.format", "accuracy", "kl", "clipFraction", "completionLength", "rolloutTokensPerSecond"]) {
        expect(grpo.metrics?.[name], name).toHaveLength(3)
      }
      expect(grpo.tokens).toBeGreaterThan(0)
      expect(tunings[0].metrics?.kl).toHaveLength(2)
      // Stopped in a distillation, in a GRPO tuning, at a boundary between the two, and in the baseline.
      const resumedDir = join(tmp, "resumed")
      for (const stopAfter of [1, 3, 2, 9]) {
        const events = yield* run(resumedDir, model, stopAfter)
        expect(events.at(-1)?.phase).toBe("interrupted")
      }
      const resumed = yield* run(resumedDir, model)
      expect(tf.memory().numTensors).toBe(before)
      // Tunings continued mid-way from a snapshot, and each logs all its steps, those before the
      // stop included: steps, tokens, losses and every measurement's count are the straight run's
      // (the measurements' values include timings, e.g. rollout tokens per second).
      const tuned = (events: ReadonlyArray<RunEvent>) =>
        events.filter((e) => e.phase === "tuned").map((e) => ({
          at: `${e.strategy} ${e.iteration} ${e.tune!.kind}`,
          steps: e.tune!.steps,
          tokens: e.tune!.tokens,
          losses: e.tune!.losses,
          measured: Object.fromEntries(Object.entries(e.tune!.metrics ?? {}).map(([name, values]) => [name, values.length]))
        }))
      expect(tuned(resumed)).toEqual(tuned(straight))
      const [a, b] = [yield* finalWeights(straightDir, straight), yield* finalWeights(resumedDir, resumed)]
      expect(a.length).toBe(2)
      a.forEach((bytes, i) => expect(Buffer.compare(bytes, b[i])).toBe(0))
    }), 300_000)
})
