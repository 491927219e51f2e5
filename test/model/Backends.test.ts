/**
 * The wasm backend (the fast path: custom-gradient matMuls, the JavaScript UnsortedSegmentSum
 * kernel) against the cpu backend (tfjs' reference kernels) on the same model and batch.
 * Tolerance: float32 summation order differs between the backends; 1e-4 absolute on logits of
 * size ~1 and 1e-4 relative to the largest gradient entry is far above that noise and far
 * below any real bug (a wrong kernel or transpose gives errors of order 1).
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { lossAndGradients } from "../../src/model/Gradients.ts"
import { initParams, paramSpecs } from "../../src/model/Params.ts"
import { forward } from "../../src/model/Transformer.ts"
import { maxAbsDiff, onBackends, tinyConfig } from "../helpers/backend.ts"

describe("cpu and wasm agree", () => {
  const config = tinyConfig({ architecture: "qwen2", qkvBias: true, tieWordEmbeddings: true }, { numLayers: 2 })
  const ids = Int32Array.from({ length: 3 * 9 }, (_, i) => (i * 7 + 3) % config.vocabSize)

  it("on logits and on the gradient of every parameter", async () => {
    const [cpu, wasm] = await onBackends(["cpu", "wasm"], async () => {
      const params = initParams(config, 21, 0.3)
      const logits = tf.tidy(() => forward(config, params, tf.tensor2d(ids, [3, 9], "int32")).logits.dataSync())
      const { loss, grads } = await Effect.runPromise(lossAndGradients(config, params, { ids, batchSize: 3, seqLen: 9 }))
      const gradValues = grads.map((g) => g.dataSync().slice())
      tf.dispose(grads)
      return { logits, loss, gradValues }
    })
    expect(maxAbsDiff(cpu.logits, wasm.logits)).toBeLessThan(1e-4)
    expect(Math.abs(cpu.loss - wasm.loss)).toBeLessThan(1e-5)
    paramSpecs(config).forEach((spec, i) => {
      const scale = Math.max(...cpu.gradValues[i].map(Math.abs), 1e-3)
      expect(maxAbsDiff(cpu.gradValues[i], wasm.gradValues[i]) / scale, spec.name).toBeLessThan(1e-4)
    })
    // The embedding gradient (gather's gradient, UnsortedSegmentSum on wasm) is not trivially zero.
    expect(Math.max(...cpu.gradValues[0].map(Math.abs))).toBeGreaterThan(1e-3)
  })
})
