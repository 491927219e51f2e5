/**
 * The distillation teacher's log-probs agree on both engines (tfjs's forward pass and ONNX
 * Runtime's session on the same weights) within 1e-4, on the transformers fixture, a Qwen2 with
 * q/k/v biases and a tied head, and a `layer_shapes` model, for a right-padded batch as
 * distillation builds it; and ORT's are the same bytes on every call (resume replays them).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { beforeAll } from "vitest"
import type { Model } from "../../src/model/Model.ts"
import { readFloats } from "../../src/model/Read.ts"
import { ortSessionBytes } from "../../src/onnx/GraphSession.ts"
import { buildBatch } from "../../src/tune/Batches.ts"
import { DistillConfig, distillTuner } from "../../src/tune/Distill.ts"
import { openTeacher } from "../../src/tune/Teacher.ts"
import { maxAbsDiff, useBackend } from "../helpers/backend.ts"
import { biasedQwen2, engineFixtures } from "../onnx/_support.ts"

beforeAll(() => useBackend("cpu"))

/** Three examples of different lengths (the shorter right-padded), ids below `vocab`. */
const batchFor = (vocab: number) =>
  buildBatch(
    [[1, 4, 2, 7, 3, 9, 5, 8], [2, 6, 1], [3, 3, 8, 1, 5]].map((ids, i) => ({ ids: ids.map((t) => t % vocab), promptLength: i })),
    16,
    0,
    true
  )

const agree = (model: Model) =>
  Effect.scoped(Effect.gen(function*() {
    const batch = batchFor(model.config.vocabSize)
    const tfjs = yield* openTeacher(model, "tfjs")
    const ort = yield* openTeacher(model, "ort")
    for (const temperature of [1, 2]) {
      const a = yield* readFloats(yield* tfjs.logProbs(batch, temperature), true)
      const b = yield* readFloats(yield* ort.logProbs(batch, temperature), true)
      expect(b.length).toBe(batch.batchSize * (batch.seqLen - 1) * model.config.vocabSize)
      expect(maxAbsDiff(a, b)).toBeLessThan(1e-4)
      expect(yield* readFloats(yield* ort.logProbs(batch, temperature), true)).toEqual(b)
    }
  }))

describe("the distillation teacher on ONNX Runtime", () => {
  for (const { name, model } of engineFixtures) {
    it.effect(`gives tfjs's log-probs on ${name}`, () => Effect.flatMap(model(), agree))
  }

  it("its session counts in a distillation's footprint where the budget is host memory", () => {
    const { config } = biasedQwen2()
    const tuner = distillTuner(Schema.decodeUnknownSync(DistillConfig)({ kind: "distill" }))
    const [tfjs, ort] = [tuner.footprint(config, { inference: "tfjs" }), tuner.footprint(config, { inference: "ort" })]
    expect(ort.bytes - tfjs.bytes).toBe(ortSessionBytes(config))
    expect(tuner.footprint(config)).toEqual(tfjs)
  })
})
