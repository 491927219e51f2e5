/**
 * The activation and wanda scorers on ONNX Runtime (the graph's MLP statistics) agree with
 * tfjs's block-by-block pass within 1e-4 (relative to the largest score), on the transformers
 * fixture, a Qwen2 with biases and a tied head, and a `layer_shapes` model, for right-padded
 * calibration batches.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import type { Model } from "../../src/model/Model.ts"
import { residentSource } from "../../src/model/WeightSource.ts"
import { calibrationBatch } from "../../src/prune/Calibration.ts"
import { activationScores, wandaScores } from "../../src/prune/NeuronScorers.ts"
import { ortActivationScores, ortWandaScores } from "../../src/prune/OrtNeuronScorers.ts"
import type { NeuronScores } from "../../src/prune/Scores.ts"
import { useBackend } from "../helpers/backend.ts"
import { unlimitedRoom } from "../helpers/room.ts"
import { engineFixtures } from "../onnx/_support.ts"

beforeAll(() => useBackend("cpu"))

const batchesFor = (vocab: number) =>
  [[[1, 4, 2, 7, 3, 9, 5, 8], [2, 6, 1], [3, 3, 8, 1, 5]], [[7, 1, 2, 9], [4, 4]]].map((sequences) =>
    calibrationBatch(sequences.map((s) => s.map((t) => t % vocab)), 0, 16))

const expectClose = (ort: NeuronScores, tfjs: NeuronScores) => {
  expect([ort.samples, ort.tokens]).toEqual([tfjs.samples, tfjs.tokens])
  const largest = Math.max(...tfjs.perLayer.flatMap((l) => [...l]))
  tfjs.perLayer.forEach((layer, i) => {
    expect(ort.perLayer[i]).toHaveLength(layer.length)
    layer.forEach((score, j) => expect(Math.abs(ort.perLayer[i][j] - score) / largest).toBeLessThan(1e-4))
  })
}

const agree = (model: Model) =>
  Effect.gen(function*() {
    const batches = batchesFor(model.config.vocabSize)
    const source = () => residentSource(model.config, model.params, unlimitedRoom)
    expectClose(yield* ortActivationScores(model, batches), yield* activationScores(source(), batches))
    expectClose(yield* ortWandaScores(model, batches), yield* wandaScores(source(), batches))
  })

describe("neuron scorers on ONNX Runtime", () => {
  for (const { name, model } of engineFixtures) {
    it.effect(`give tfjs's activation and wanda scores on ${name}`, () => Effect.flatMap(model(), agree))
  }
})
