import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { generate } from "../../src/model/Generate.ts"
import { lossAndGradients } from "../../src/model/Gradients.ts"
import { disposeParams, initParams } from "../../src/model/Params.ts"
import { forward } from "../../src/model/Transformer.ts"
import { tinyConfig, useBackend } from "../helpers/backend.ts"

beforeAll(() => useBackend("wasm"))

describe("no tensor leaks", () => {
  it("tf.memory().numTensors is flat across forward, gradient and decoding steps", async () => {
    const config = tinyConfig()
    const params = initParams(config, 1)
    const ids = Int32Array.from({ length: 2 * 8 }, (_, i) => i % config.vocabSize)
    const once = async () => {
      tf.tidy(() => {
        forward(config, params, tf.tensor2d(ids, [2, 8], "int32"))
      })
      tf.dispose((await Effect.runPromise(lossAndGradients(config, params, { ids, batchSize: 2, seqLen: 8 }))).grads)
      await Effect.runPromise(generate(config, params, [[1, 2, 3], [4]], { temperature: 1, topP: 0.9, maxNewTokens: 6, seed: 1 }))
    }
    await once()
    const before = tf.memory().numTensors
    for (let i = 0; i < 20; i++) await once()
    expect(tf.memory().numTensors).toBe(before)
    disposeParams(config, params)
  })
})
