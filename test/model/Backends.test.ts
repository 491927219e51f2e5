/**
 * The wasm backend (the fast path: custom-gradient matMuls, the JavaScript UnsortedSegmentSum
 * kernel) and the webgpu backend (tfjs' WGSL kernels; lavapipe in CI) against the cpu backend
 * (tfjs' reference kernels) on the same model and batch.
 * Tolerance: float32 summation order differs between the backends; 1e-4 absolute on logits of
 * size ~1 and 1e-4 relative to the largest gradient entry is far above that noise and far
 * below any real bug (a wrong kernel or transpose gives errors of order 1).
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { lossAndGradients } from "../../src/model/Gradients.ts"
import { disposeParams, initParams, paramSpecs } from "../../src/model/Params.ts"
import { forward } from "../../src/model/Transformer.ts"
import { maxAbsDiff, onBackends, readAll, relativeDiff, tinyConfig } from "../helpers/backend.ts"

describe("cpu, wasm and webgpu agree", () => {
  const config = tinyConfig({ architecture: "qwen2", qkvBias: true, tieWordEmbeddings: true }, { numLayers: 2 })
  const ids = Int32Array.from({ length: 3 * 9 }, (_, i) => (i * 7 + 3) % config.vocabSize)

  it("on logits and on the gradient of every parameter", async () => {
    const [cpu, ...others] = await onBackends(["cpu", "wasm", "webgpu"], async () => {
      const params = initParams(config, 21, 0.3)
      const [logits] = await readAll([tf.tidy(() => forward(config, params, tf.tensor2d(ids, [3, 9], "int32")).logits)], true)
      const { loss, grads } = await Effect.runPromise(lossAndGradients(config, params, { ids, batchSize: 3, seqLen: 9 }))
      const gradValues = await readAll(grads, true)
      disposeParams(config, params)
      return { logits, loss, gradValues }
    })
    for (const [name, other] of [["wasm", others[0]], ["webgpu", others[1]]] as const) {
      expect(maxAbsDiff(cpu.logits, other.logits), name).toBeLessThan(1e-4)
      expect(Math.abs(cpu.loss - other.loss), name).toBeLessThan(1e-5)
      paramSpecs(config).forEach((spec, i) => {
        expect(relativeDiff(cpu.gradValues[i], other.gradValues[i]), `${name}: ${spec.name}`).toBeLessThan(1e-4)
      })
    }
    // The embedding gradient (gather's gradient, UnsortedSegmentSum on wasm) is not trivially zero.
    expect(Math.max(...cpu.gradValues[0].map(Math.abs))).toBeGreaterThan(1e-3)
  })
})
