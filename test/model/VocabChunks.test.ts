/**
 * The LM head in vocabulary chunks inside autodiff (model/VocabChunks.ts): the same
 * log-probabilities and gradients as the full-vocabulary logSoftmax, on cpu with small chunks
 * (tied and untied heads, at temperature 1 and GRPO's 0.7), and on webgpu for a batch whose full logits are larger
 * than the adapter's binding limit (against wasm's unchunked loss) — where the unchunked loss
 * would be rejected by the GPU.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { lossAndGradients } from "../../src/model/Gradients.ts"
import { disposeParams, initParams, paramSpecs } from "../../src/model/Params.ts"
import { forward, hiddenStates } from "../../src/model/Transformer.ts"
import { chunkedTargetLogProbs, headChunkRows } from "../../src/model/VocabChunks.ts"
import { maxAbsDiff, numTensors, readAll, relativeDiff, tinyConfig, useBackend } from "../helpers/backend.ts"

describe("the LM head in vocabulary chunks", () => {
  it("gives the full logSoftmax's target log-probabilities and gradients (tied and untied heads)", async () => {
    await useBackend("cpu")
    for (const overrides of [{ tieWordEmbeddings: true }, { tieWordEmbeddings: false }]) {
      const config = tinyConfig({ vocabSize: 23, ...overrides })
      const params = initParams(config, 5, 0.3)
      const ids = tf.tensor2d(Int32Array.from({ length: 3 * 6 }, (_, i) => (i * 5 + 2) % 23), [3, 6], "int32")
      const targets = tf.tensor1d(Int32Array.from({ length: 3 * 6 }, (_, i) => (i * 7 + 1) % 23), "int32")
      const weights = [params.embed, ...(params.lmHead !== undefined ? [params.lmHead.w] : [])]
      const both = (chunk: number | undefined, temperature = 1) =>
        tf.tidy(() => {
          const f = (...xs: Array<tf.Tensor>) => {
            const p = { ...params, embed: xs[0] as tf.Tensor2D, ...(params.lmHead ? { lmHead: { w: xs[1] as tf.Tensor2D } } : {}) }
            const final = hiddenStates(config, p, ids).hidden
            const logProbs = chunk === undefined
              ? tf.sum(tf.mul(tf.logSoftmax(tf.div(tf.reshape(forward(config, p, ids).logits, [18, 23]), temperature)), tf.oneHot(targets, 23)), 1)
              : chunkedTargetLogProbs(config, p, final, targets, chunk, temperature)
            return tf.sum(tf.mul(logProbs, tf.range(1, 19))) as tf.Scalar
          }
          const { value, grads } = tf.valueAndGrads(f)(weights)
          return [value, ...grads]
        })
      // GRPO reads its completions' log-probs at its sampling temperature.
      for (const temperature of [1, 0.7]) {
        const [full, chunked] = [both(undefined, temperature), both(5, temperature)]
        const [fullValues, chunkedValues] = [await readAll(full, true), await readAll(chunked, true)]
        expect(Math.abs(fullValues[0][0] - chunkedValues[0][0])).toBeLessThan(1e-4)
        fullValues.slice(1).forEach((g, i) => expect(relativeDiff(g, chunkedValues[i + 1]), `gradient ${i}, T=${temperature}`).toBeLessThan(1e-5))
      }
      tf.dispose([ids, targets])
      disposeParams(config, params)
    }
  })

  it.effect("keep a batch's loss on webgpu within the binding limit, equal to wasm's unchunked loss", () =>
    Effect.gen(function*() {
      // 1,100 targets over a 32,768-token vocabulary: 144 MB of logits, past lavapipe's 128 MiB binding.
      const config = tinyConfig({ vocabSize: 32_768, hiddenSize: 8, headDim: 4 }, { numLayers: 1, intermediateSize: 8, numHeads: 2, numKeyValueHeads: 1 })
      const batch = { ids: Int32Array.from({ length: 20 * 56 }, (_, i) => (i * 7919) % 32_768), batchSize: 20, seqLen: 56 }
      const run = Effect.gen(function*() {
        const params = initParams(config, 3, 0.3)
        const before = numTensors()
        const { loss, grads } = yield* lossAndGradients(config, params, batch)
        const values = yield* Effect.promise(() => readAll(grads, true))
        expect(numTensors()).toBe(before)
        disposeParams(config, params)
        return { loss, values }
      })
      yield* Effect.promise(() => useBackend("webgpu"))
      expect(headChunkRows(config, 20 * 55)).toBeLessThan(config.vocabSize)
      const gpu = yield* run
      // wasm, not cpu, as the reference here: cpu's JavaScript kernels take minutes over 36M logits.
      yield* Effect.promise(() => useBackend("wasm"))
      const cpu = yield* run
      expect(Math.abs(gpu.loss - cpu.loss)).toBeLessThan(1e-4)
      paramSpecs(config).forEach((spec, i) => expect(relativeDiff(cpu.values[i], gpu.values[i]), spec.name).toBeLessThan(1e-4))
      expect(maxAbsDiff(cpu.values[0], new Float32Array(cpu.values[0].length))).toBeGreaterThan(1e-4)
    }), 120_000)
})
