/**
 * GRPO's rollouts sample the same completions on both engines: the policy's forward passes on
 * ONNX Runtime (a session on its weights, KV cache) give tfjs's logits within the last bits, so
 * for a seed the same tokens are drawn, with log-probs within 1e-4; and ORT's rollouts replay
 * exactly from a generator state (what a resumed GRPO tuning relies on). On the transformers
 * fixture, a Qwen2 with biases and a tied head, and a `layer_shapes` model; greedy ids too.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { beforeAll } from "vitest"
import type { Model } from "../../src/model/Model.ts"
import { Rng } from "../../src/model/Rng.ts"
import { ortSessionBytes } from "../../src/onnx/GraphSession.ts"
import { GrpoConfig, grpoFootprint } from "../../src/tune/Grpo.ts"
import { openRolloutDecoder, sampleRollouts } from "../../src/tune/Rollouts.ts"
import { maxAbsDiff, useBackend } from "../helpers/backend.ts"
import { biasedQwen2, engineFixtures } from "../onnx/_support.ts"

beforeAll(() => useBackend("cpu"))

const rolloutsOn = (model: Model, engine: "tfjs" | "ort", options: { temperature: number; topP: number }, seed: number) =>
  Effect.scoped(Effect.gen(function*() {
    const V = model.config.vocabSize
    const prompts = [[1, 5, 9], [1, 7, 3, 12, 4], [2]].map((p) => p.map((t) => t % V))
    const decoder = yield* openRolloutDecoder(model, engine)
    return yield* sampleRollouts(decoder, prompts, { rollouts: 3, maxNewTokens: 8, stopTokens: [], batchSize: 4, ...options }, Rng.seeded(seed))
  }))

const agree = (model: Model) =>
  Effect.gen(function*() {
    for (const options of [{ temperature: 1, topP: 1 }, { temperature: 0.7, topP: 0.9 }, { temperature: 0, topP: 1 }]) {
      const tfjs = yield* rolloutsOn(model, "tfjs", options, 7)
      const ort = yield* rolloutsOn(model, "ort", options, 7)
      expect(ort.map((r) => r.completion)).toEqual(tfjs.map((r) => r.completion))
      expect(maxAbsDiff(ort.flatMap((r) => r.logProbs), tfjs.flatMap((r) => r.logProbs))).toBeLessThan(1e-4)
      expect(yield* rolloutsOn(model, "ort", options, 7)).toEqual(ort)
    }
  })

describe("GRPO rollouts on ONNX Runtime", () => {
  for (const { name, model } of engineFixtures) {
    it.effect(`sample tfjs's completions on ${name}, and replay exactly`, () => Effect.flatMap(model(), agree))
  }

  it("count the policy's session in GRPO's footprint where the budget is host memory", () => {
    const { config } = biasedQwen2()
    const footprint = grpoFootprint(Schema.decodeUnknownSync(GrpoConfig)({ kind: "grpo" }))
    expect(footprint(config, { inference: "ort" }).bytes - footprint(config, { inference: "tfjs" }).bytes).toBe(ortSessionBytes(config))
  })
})
