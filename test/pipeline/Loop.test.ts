/**
 * The loop's control flow with an injected evaluation: gates, rollback with halved steps,
 * a user-defined stage with its own typed error, and flat tensor counts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema, Stream } from "effect"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { taskDataset } from "../../layers/Datasets.ts"
import { RunStoreLive } from "../../layers/RunStore.ts"
import type { RunStore } from "../../src/services/RunStore.ts"
import { newHfConfig } from "../../src/io/NewConfig.ts"
import { countParams, disposeParams, initParams } from "../../src/model/Params.ts"
import { disposeModel, runLoop } from "../../src/pipeline/Loop.ts"
import type { ModelState, Stage } from "../../src/pipeline/ModelState.ts"
import { parsePlan } from "../../src/pipeline/Plan.ts"
import { calibrationData, makePruneFn } from "../../src/pipeline/Pruning.ts"
import { builtinTask } from "../../src/tasks/Builtin.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { localGradients } from "../../src/tune/Trainer.ts"
import { tinyConfig, useBackend } from "../helpers/backend.ts"
import { tempDir } from "../io/_support.ts"

beforeAll(() => useBackend("cpu"))

const tokenizer = baseTokenizer()
const config = tinyConfig({ vocabSize: tokenizer.vocabSize }, { intermediateSize: 64 })

const arith = taskDataset(builtinTask({ task: "arith" }))
const general = taskDataset(builtinTask({ task: "general" }))

/** A stand-in evaluation: "accuracy" is 1 while the MLP keeps at least `floor` neurons per layer, else 0. */
const accuracyAbove = (floor: number) => (state: ModelState) =>
  Effect.succeed({ fake: { examples: 1, accuracy: state.model.config.layers[0].intermediateSize >= floor ? 1 : 0 } })

const setup = (planYaml: string, floor: number) =>
  Effect.gen(function*() {
    const plan = yield* parsePlan(planYaml, "plan.yaml")
    const original = { config, params: initParams(config, 3, 0.2) }
    return {
      plan,
      strategy: "ptl" as const,
      stageTemplate: { hfConfig: newHfConfig(config, { bos: 1, eos: 2, pad: 0 }), dtype: "F32" as const, extraFiles: [] },
      originalMetrics: { fake: { examples: 1, accuracy: 1 } },
      original,
      evaluate: accuracyAbove(floor),
      tuning: { tuner: plan.tuner, tokenizer, datasets: [arith], freshChunks: true, seed: 1, gradients: localGradients },
      prune: makePruneFn(plan, calibrationData(plan, tokenizer, [arith], general))
    }
  })

const plan = (extra: string) => `
model: unused
target: { perLayer: { neurons: 16 } }
iterations: 2
scorer: activation
data: { tune: [{ task: arith }], calibration: [{ task: arith }], evaluate: [{ task: arith }], calibrationExamples: 4 }
tuner: { steps: 1, batchSize: 2, maxSeqLen: 32 }
gates: { accuracyRetained: 0.9, retries: 2 }
${extra}`

/** Runs a loop to its end in the run folder `dir`; the last state's model is the caller's to dispose. */
const collect = <E>(loop: Stream.Stream<ModelState, E, RunStore>, dir: string) =>
  Stream.runCollect(loop).pipe(Effect.provide(RunStoreLive(dir)))

const start = (s: { original: { config: typeof config; params: ReturnType<typeof initParams> } }) =>
  ({ accepted: s.original, acceptedStage: "stages/ptl-000", iteration: 0 })

describe("the loop", () => {
  it.live("a failed gate rolls back and retries with half the step", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      // 64 → 16 neurons in 2 iterations: the first step (to 40) fails below 48, the halved one (to 52) passes;
      // then 52 → 16: (16 and 34 fail) and 43 fails too: retries exhausted, the run stops at 52.
      const s = yield* setup(plan(""), 48)
      const states = yield* collect(runLoop(s, start(s)), dir)
      const trace = states.map((st) => `${st.iteration}.${st.attempt} ${st.phase} ${st.model.config.layers[0].intermediateSize}`)
      expect(trace.filter((t) => t.includes("pruned") || t.includes("accepted") || t.includes("rolled-back"))).toEqual([
        "1.0 pruned 40",
        "1.0 rolled-back 64",
        "1.1 pruned 52",
        "1.1 accepted 52",
        "2.0 pruned 16",
        "2.0 rolled-back 52",
        "2.1 pruned 34",
        "2.1 rolled-back 52",
        "2.2 pruned 43",
        "2.2 rolled-back 52"
      ])
      expect(states.at(-1)?.message).toContain("no smaller step can pass")
      disposeModel(states.at(-1)!.model)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("after a pass with a halved step, the next iteration's step grows back one halving at a time", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      // 64 → 40 and 52 fail below 55, 58 passes on attempt 2 (a quarter step). Iteration 2 is
      // scheduled to reach 16 but starts at half that step (37), not at the full one that failed.
      const s = yield* setup(plan(""), 55)
      const states = yield* collect(runLoop(s, start(s)), dir)
      const pruned = states.filter((st) => st.phase === "pruned").map((st) => `${st.iteration}.${st.attempt} ${st.model.config.layers[0].intermediateSize}`)
      expect(pruned).toEqual(["1.0 40", "1.1 52", "1.2 58", "2.0 37", "2.1 48", "2.2 53"])
      disposeModel(states.at(-1)!.model)
      // A resumed loop (the start Run.ts builds from the accepted event) plans the same step.
      const at58 = yield* s.prune(s.original, "neurons", [58, 58], 1)
      const resumed = yield* collect(
        runLoop(s, { accepted: at58, acceptedStage: "stages/ptl-001", iteration: 1, acceptedAttempt: 2 }).pipe(Stream.take(1)),
        join(dir, "resumed")
      )
      expect(resumed[0].model.config.layers[0].intermediateSize).toBe(37)
      disposeModel(resumed[0].model)
      disposeModel(at58)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("a list of tuning steps gives each iteration its own budget; one-shot tunes with their sum", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      // Accuracy holds down to 30 neurons: iteration 2 is halved twice (to 34), so iteration 3,
      // beyond the list, uses its last entry.
      const s = yield* setup(plan("").replace("steps: 1,", "steps: [1, 2],"), 30)
      const tuned = (states: ReadonlyArray<ModelState>) =>
        states.filter((st) => st.phase === "tuned").map((st) => `${st.iteration}.${st.attempt} ${st.tune?.steps}`)
      const states = yield* collect(runLoop(s, start(s)), dir)
      expect(tuned(states).slice(0, 5)).toEqual(["1.0 1", "2.0 2", "2.1 2", "2.2 2", "3.0 2"])
      disposeModel(states.at(-1)!.model)
      const oneShot = yield* collect(runLoop({ ...s, strategy: "one-shot" }, start(s)), join(dir, "one-shot"))
      expect(tuned(oneShot)).toEqual(["1.0 3"])
      disposeModel(oneShot.at(-1)!.model)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("GateFailed carries the history when the plan says so", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      const s = yield* setup(plan("").replace("retries: 2 }", "retries: 1, onFailure: fail }"), 1000)
      const error = yield* Effect.flip(Stream.runDrain(runLoop(s, start(s))).pipe(Effect.provide(RunStoreLive(dir))))
      expect(error._tag).toBe("GateFailed")
      if (error._tag === "GateFailed") expect(error.history).toHaveLength(2)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)

  it.live("a user-defined stage composes into the loop with its own typed error, and tensors stay flat", () =>
    Effect.gen(function*() {
      class QuantizeError extends Schema.TaggedError<QuantizeError>()("QuantizeError", { bits: Schema.Number, message: Schema.String }) {}
      /** Rounds every weight to `bits` bits of mantissa: a stage a user might add. */
      const roundWeights = (bits: number): Stage<QuantizeError> => (state) =>
        bits < 2
          ? Effect.fail(new QuantizeError({ bits, message: `cannot round to ${bits} bits` }))
          : Effect.sync(() => {
            const scale = 2 ** bits
            const params = state.model.params
            const round = (t: tf.Tensor) => tf.tidy(() => tf.div(tf.round(tf.mul(t, scale)), scale))
            const rounded = { ...params, norm: round(params.norm) as tf.Tensor1D }
            params.norm.dispose()
            return { ...state, model: { ...state.model, params: rounded } }
          })
      const dir = join(yield* tempDir, "run")
      const s = yield* setup(plan(""), 0)
      const before = tf.memory().numTensors
      const states = yield* collect(runLoop({ ...s, afterTune: roundWeights(4) }, start(s)), dir)
      const last = states.at(-1)!
      expect(last.model.config.layers[0].intermediateSize).toBe(16)
      expect(Array.from(last.model.params.norm.dataSync()).every((v) => Number.isInteger(v * 16))).toBe(true)
      // Only the final model is alive besides the original.
      expect(tf.memory().numTensors - before).toBe(last.model.config.layers.length * 9 + 3)
      disposeParams(last.model.config, last.model.params)
      expect(countParams(last.model.config).mlp).toBe(2 * 3 * 16 * 16)
      // The error type of the user stage is part of the stream's error type.
      const failing = runLoop({ ...s, afterTune: roundWeights(1) }, start(s))
      const error = yield* Effect.flip(Stream.runDrain(failing).pipe(Effect.provide(RunStoreLive(join(dir, "second")))))
      expect(error._tag).toBe("QuantizeError")
      // Compile-time: QuantizeError is a member of the stream's error union (this line fails to type-check otherwise).
      type StreamError = typeof failing extends Stream.Stream<unknown, infer E, unknown> ? E : never
      const tracked: [QuantizeError] extends [StreamError] ? true : false = true
      expect(tracked).toBe(true)
      disposeParams(s.original.config, s.original.params)
    }), 60_000)
})
