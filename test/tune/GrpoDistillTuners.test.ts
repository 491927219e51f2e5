/**
 * The GRPO and distillation tuners through the Tuner interface: a user's own reward keeps its
 * error type in the tuner's and the loop's, and fails a step by its tag; peak-memory estimates
 * (reference model and rollout cache included) against measured peaks on two model sizes; and
 * snapshots that do not fit are refused with InvalidTunerState.
 */
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Layer, Schema, type Stream } from "effect"
import { beforeAll } from "vitest"
import { measurePeak } from "../helpers/PeakMemory.ts"
import type { Model } from "../../src/model/Model.ts"
import { disposeParams, initParams } from "../../src/model/Params.ts"
import type { runLoop } from "../../src/pipeline/Loop.ts"
import { makeReward, type Reward } from "../../src/reward/Reward.ts"
import { ruleReward } from "../../src/reward/RuleReward.ts"
import { arith } from "../../src/tasks/Arith.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { DistillConfig, distillTuner } from "../../src/tune/Distill.ts"
import { GrpoConfig, type GrpoError, grpoTuner } from "../../src/tune/Grpo.ts"
import type { TuneContext, Tuner } from "../../src/tune/Tuner.ts"
import { numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"
import { unlimitedRoom } from "../helpers/room.ts"
import { taskDataset } from "../../src/services/DatasetsInMemory.ts"

beforeAll(() => useBackend("cpu"))

const tokenizer = baseTokenizer()
const shapeOf = (hidden: number, intermediate: number) =>
  tinyConfig({ vocabSize: tokenizer.vocabSize, hiddenSize: hidden, headDim: hidden / 4, maxPositionEmbeddings: 256 }, { intermediateSize: intermediate })
const grpoConfig = Schema.decodeUnknownSync(GrpoConfig)({ kind: "grpo", steps: 2, prompts: 4, rollouts: 4, maxNewTokens: 24, maxSeqLen: 96 })

const contextFor = (original: Model): TuneContext => ({
  iteration: 1,
  steps: 2,
  seed: 1,
  tokenizer,
  datasets: [taskDataset(arith())],
  chunk: 1,
  original,
  room: unlimitedRoom
})

/** A reward from a judge service that may be down: the user's own error type. */
class JudgeUnavailable extends Schema.TaggedError<JudgeUnavailable>()("JudgeUnavailable", { message: Schema.String }) {}
class Judge extends Context.Service<Judge, Reward<JudgeUnavailable>>()("test/Judge") {}
const judgeDown = Layer.succeed(Judge, makeReward("judge", () => Effect.fail(new JudgeUnavailable({ message: "judge offline" }))))

describe("a GRPO tuner with a user's own reward", () => {
  it("carries the reward's error type into the tuner and into the loop that runs it", () => {
    const tuner = grpoTuner(grpoConfig, Effect.service(Judge))
    expectTypeOf(tuner).toEqualTypeOf<Tuner<GrpoError<JudgeUnavailable>, Judge>>()
    type Loop = ReturnType<typeof runLoop<never, never, GrpoError<JudgeUnavailable>, Judge>>
    expectTypeOf<JudgeUnavailable>().toExtend<Stream.Error<Loop>>()
    expectTypeOf<Judge>().toExtend<Stream.Services<Loop>>()
  })

  it.effect("fails the step with that error, which a program catches by its tag", () =>
    Effect.gen(function*() {
      const config = shapeOf(16, 32)
      const original = { config, params: initParams(config, 2, 0.1) }
      const before = numTensors()
      const caught = yield* Effect.scoped(Effect.gen(function*() {
        const session = yield* grpoTuner(grpoConfig, Effect.service(Judge)).start({ config, params: initParams(config, 3, 0.1) }, contextFor(original))
        return yield* session.step
      })).pipe(
        Effect.map(() => "no failure"),
        Effect.catchTag("JudgeUnavailable", (e) => Effect.succeed(e.message)),
        Effect.provide(judgeDown)
      )
      expect(caught).toBe("judge offline")
      expect(numTensors()).toBe(before)
      disposeParams(config, original.params)
    }))
})

describe("peak memory of GRPO and distillation", () => {
  // Small batches: the measurement runs real steps.
  const grpo = Schema.decodeUnknownSync(GrpoConfig)({ kind: "grpo", steps: 1, prompts: 2, rollouts: 4, maxNewTokens: 16, maxSeqLen: 80 })
  const distill = Schema.decodeUnknownSync(DistillConfig)({ kind: "distill", steps: 1, batchSize: 8, maxSeqLen: 80 })

  it.effect("is estimated, reference model and rollout cache included, at or above the measured peak (two sizes, cpu, wasm and webgpu)", () =>
    Effect.gen(function*() {
      for (const backend of ["cpu", "wasm", "webgpu"] as const) {
        yield* Effect.promise(() => useBackend(backend))
        for (const [hidden, intermediate] of [[16, 32], [32, 64]]) {
          const config = shapeOf(hidden, intermediate)
          const original = { config, params: initParams(config, 2, 0.1) }
          const tuners: ReadonlyArray<[Tuner<unknown, never>, number]> = [
            // GRPO's sequences (prompt + completion) are shorter than maxSeqLen, which the estimate assumes.
            [grpoTuner(grpo, Effect.succeed(ruleReward("arith"))), 2],
            [distillTuner(distill), 1.3]
          ]
          for (const [tuner, most] of tuners) {
            const model = { config, params: initParams(config, 3, 0.1) }
            const { peakBytes } = yield* Effect.promise(() =>
              measurePeak(() =>
                Effect.runPromise(Effect.scoped(Effect.flatMap(tuner.start(model, { ...contextFor(original), steps: 1 }), (s) => s.step)).pipe(Effect.orDie))
              )
            )
            const estimate = tuner.footprint(config)
            // The measured peak is above the weights the tuning was handed; the estimate counts them.
            const ratio = estimate.bytes / (peakBytes + estimate.parts.weights)
            // The pass constants are a fit (Footprint.ts: within 3.4% of the peaks it was fitted to).
            expect(ratio, `${tuner.kind}, hidden ${hidden}, ${backend}`).toBeGreaterThan(0.95)
            expect(ratio, `${tuner.kind}, hidden ${hidden}, ${backend}`).toBeLessThan(most)
          }
          expect(grpoTuner(grpo).footprint(config).parts["reference model"]).toBe(grpoTuner(grpo).footprint(config).parts.weights)
          disposeParams(config, original.params)
        }
      }
      yield* Effect.promise(() => useBackend("cpu"))
    }))
})

describe("resuming GRPO", () => {
  it.effect("refuses a snapshot without the reference weights or with a state that does not decode", () =>
    Effect.gen(function*() {
      const config = shapeOf(16, 32)
      const original = { config, params: initParams(config, 2, 0.1) }
      const tuner = grpoTuner(grpoConfig, Effect.succeed(ruleReward("arith")))
      const snapshot = yield* Effect.scoped(Effect.gen(function*() {
        const session = yield* tuner.start({ config, params: initParams(config, 3, 0.1) }, contextFor(original))
        yield* session.step
        return yield* session.snapshot
      }))
      const before = numTensors()
      const withoutReference = { ...snapshot, tensors: snapshot.tensors.filter((t) => !t.name.startsWith("ref.")) }
      for (const [broken, why] of [[withoutReference, "reference weight ref.model.embed_tokens.weight is missing"], [{ ...snapshot, state: { step: "x" } }, "do not decode"]] as const) {
        const model = { config, params: initParams(config, 4, 0.1) }
        const error = yield* Effect.flip(Effect.scoped(tuner.resume(model, broken, contextFor(original))))
        expect(error._tag).toBe("InvalidTunerState")
        expect(error.message).toContain(why)
        disposeParams(config, model.params)
      }
      expect(numTensors()).toBe(before)
      disposeParams(config, original.params)
      void tf
    }))
})
