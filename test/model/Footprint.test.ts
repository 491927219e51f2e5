/**
 * DeviceMemory's estimates against reality: the peak tensor memory of a training step, a
 * forward pass and decoding, measured by following the engine's buffers (test/helpers/PeakMemory.ts),
 * on two model shapes that differ in every dimension. The estimate must be within 25%.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { measurePeak } from "../helpers/PeakMemory.ts"
import { decodingBytes, forwardBytes, fullTuningFootprint, weightBytes } from "../../src/model/Footprint.ts"
import { generate } from "../../src/model/Generate.ts"
import { lossAndGradients } from "../../src/model/Gradients.ts"
import { assembleParams, initParams, type Params, paramSpecs, paramTensors } from "../../src/model/Params.ts"
import { forward } from "../../src/model/Transformer.ts"
import { adamWStep, defaultAdamW, disposeAdamW, initAdamW } from "../../src/tune/AdamW.ts"
import { clipByGlobalNorm } from "../../src/tune/ClipGrad.ts"
import { tinyConfig, useBackend } from "../helpers/backend.ts"

beforeAll(() => useBackend("cpu"))

const shapes = [
  { name: "small", hidden: 64, layers: 2, heads: 4, kvHeads: 2, mlp: 192, vocab: 50, batch: 8, seqLen: 48 },
  { name: "wider and deeper", hidden: 96, layers: 3, heads: 6, kvHeads: 3, mlp: 320, vocab: 300, batch: 4, seqLen: 64 }
]

const within = (estimate: number, measured: number) => Math.abs(estimate - measured) / measured

describe("memory estimates", () => {
  for (const s of shapes) {
    it.effect(`match measured peaks within 25% (${s.name})`, () =>
      Effect.promise(async () => {
        const config = tinyConfig(
          { vocabSize: s.vocab, hiddenSize: s.hidden, headDim: s.hidden / s.heads, maxPositionEmbeddings: 256 },
          { numLayers: s.layers, intermediateSize: s.mlp, numHeads: s.heads, numKeyValueHeads: s.kvHeads }
        )
        let params: Params = initParams(config, 1)
        let optimizer = initAdamW(paramTensors(config, params))
        const ids = Int32Array.from({ length: s.batch * s.seqLen }, (_, i) => (i * 7) % s.vocab)
        // One optimizer step beyond the weights and moments that live throughout.
        const step = await measurePeak(async () => {
          const { grads } = await Effect.runPromise(lossAndGradients(config, params, { ids, batchSize: s.batch, seqLen: s.seqLen }))
          const clipped = await Effect.runPromise(clipByGlobalNorm(grads, 1))
          tf.dispose(grads)
          const old = paramTensors(config, params)
          const updated = adamWStep(defaultAdamW, optimizer, old, clipped.grads, 1e-3)
          tf.dispose([...clipped.grads, ...old])
          optimizer = updated.state
          const names = paramSpecs(config).map((spec) => spec.name)
          params = assembleParams(config, (name) => updated.params[names.indexOf(name)])
        })
        const tuning = fullTuningFootprint(config, s.batch, s.seqLen)
        const stepEstimate = tuning.bytes - tuning.parts.weights - tuning.parts["optimizer moments"]
        expect(within(stepEstimate, step.peakBytes)).toBeLessThan(0.25)

        const pass = await measurePeak(() => tf.tidy(() => void forward(config, params, tf.tensor2d(ids, [s.batch, s.seqLen], "int32"), {})))
        expect(within(forwardBytes(config, s.batch, s.seqLen), pass.peakBytes)).toBeLessThan(0.25)

        const prompts = Array.from({ length: s.batch }, (_, b) => Array.from({ length: s.seqLen / 2 }, (_, i) => (b + i) % s.vocab))
        const decoding = await measurePeak(() => Effect.runPromise(generate(config, params, prompts, { maxNewTokens: s.seqLen / 2, temperature: 0, topP: 1 })))
        expect(within(decodingBytes(config, s.batch, s.seqLen), decoding.peakBytes)).toBeLessThan(0.25)

        expect(weightBytes(config)).toBe(paramTensors(config, params).reduce((sum, t) => sum + t.size * 4, 0))
        tf.dispose(paramTensors(config, params))
        disposeAdamW(optimizer)

      }))
  }
})

describe("a tied LM head (issue 24.7)", () => {
  it.effect("reads the embedding in place: decoding holds no transposed copy of it (0.5 GiB for Qwen2.5-0.5B)", () =>
    Effect.promise(async () => {
      const config = tinyConfig({ vocabSize: 8192, hiddenSize: 64, headDim: 16, tieWordEmbeddings: true })
      const params = initParams(config, 1)
      expect(params.lmHead).toBeUndefined()
      const embedBytes = config.vocabSize * config.hiddenSize * 4
      const decoding = await measurePeak(() => Effect.runPromise(generate(config, params, [[1, 2, 3, 4]], { maxNewTokens: 2, temperature: 0, topP: 1 })))
      expect(decoding.peakBytes).toBeLessThan(embedBytes / 2)
      tf.dispose(paramTensors(config, params))
    }))
})
