/**
 * Perplexity's losses on ONNX Runtime (the `nll` head: −log p(target) computed in the session)
 * against the same losses block by block on tfjs (cpu backend), on the transformers fixture, a
 * Qwen2 with biases and a tied head, and a `layer_shapes` model; and against a log-softmax of
 * the LM head's own logits, computed here.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { blockwiseLoss, lossBatch } from "../../src/model/Blockwise.ts"
import { disposeParams } from "../../src/model/Params.ts"
import { residentSource } from "../../src/model/WeightSource.ts"
import { openGraphSession } from "../../src/onnx/GraphSession.ts"
import { modelWeights } from "../../src/onnx/ModelSession.ts"
import { runDecoder, runTargetNll } from "../../src/onnx/OrtDecoder.ts"
import { ortGroupLoss } from "../../src/onnx/OrtPerplexity.ts"
import { useBackend } from "../helpers/backend.ts"
import { unlimitedRoom } from "../helpers/room.ts"
import { randomBatches } from "../prune/_support.ts"
import { engineFixtures } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

describe("perplexity's losses on ONNX Runtime", () => {
  for (const fixture of engineFixtures) {
    it.effect(`equal tfjs's block-by-block losses on ${fixture.name}, in one run per batch or one row per run`, () =>
      Effect.gen(function*() {
        const model = yield* fixture.model()
        const { config } = model
        const batches = randomBatches(config.vocabSize, { sequences: 7, batchSize: 3, minLen: 2, maxLen: 11, seed: 9 }).map(lossBatch)
        const reference = yield* blockwiseLoss(residentSource(config, model.params, unlimitedRoom), batches)
        const session = yield* openGraphSession(config, modelWeights(model), { head: "nll" })
        const seen: Array<number> = []
        for (const logitFloats of [undefined, 1]) {
          const ort = yield* ortGroupLoss(session, config, {
            onRows: (done) => seen.push(done),
            ...(logitFloats !== undefined ? { logitFloats } : {})
          })(batches)
          expect(ort.counts).toEqual(reference.counts)
          ort.weightedSums.forEach((sum, b) => expect(Math.abs(sum - reference.weightedSums[b])).toBeLessThan(1e-4 * Math.max(1, reference.counts[b])))
        }
        expect(seen).toEqual([3, 6, 7, 3, 6, 7])
        disposeParams(config, model.params)
      }).pipe(Effect.scoped), 60_000)
  }

  it.effect("give −log softmax(logits)[target] of the LM head's own logits at every position", () =>
    Effect.gen(function*() {
      const model = yield* engineFixtures[1].model()
      const { config } = model
      const V = config.vocabSize
      const ids = [[3, 1, 7, 2, 9], [5, 5, 2, 8, 6]]
      const targets = [[1, 7, 2, 9, 4], [5, 2, 8, 6, 0]]
      const lm = yield* openGraphSession(config, modelWeights(model))
      const nllSession = yield* openGraphSession(config, modelWeights(model), { head: "nll" })
      const { logits } = yield* Effect.promise(() => runDecoder(lm, config, { ids }))
      const nll = yield* Effect.promise(() => runTargetNll(nllSession, config, ids, targets))
      expect(nll.length).toBe(10)
      targets.flat().forEach((target, p) => {
        const row = Array.from(logits.subarray(p * V, (p + 1) * V))
        const max = Math.max(...row)
        const logSumExp = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0))
        expect(Math.abs(nll[p] - (logSumExp - row[target]))).toBeLessThan(1e-5)
      })
      disposeParams(config, model.params)
    }).pipe(Effect.scoped))
})
