import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import {
  type Adapters,
  adapterGradients,
  adapterTensors,
  blockwiseAdapterGradients,
  disposeAdapters,
  initAdapters,
  mergeAdapters,
  withAdapters,
  withTensors
} from "../../src/model/Adapters.ts"
import { lossBatch } from "../../src/model/Blockwise.ts"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import { disposeParams, initParams, type Params } from "../../src/model/Params.ts"
import { forward, nextTokenLoss } from "../../src/model/Transformer.ts"
import { residentSource } from "../../src/model/WeightSource.ts"
import { maxAbsDiff, numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"
import { randomBatches } from "../prune/_support.ts"
import { unlimitedRoom } from "../helpers/room.ts"
import { liveAdapters } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

const config = tinyConfig({ architecture: "qwen2", vocabSize: 29, tieWordEmbeddings: true, qkvBias: true }, { numLayers: 2 })
const spec = { rank: 3, alpha: 6, targets: ["q", "k", "v", "o", "gate", "up", "down"] as const }
const [batch] = randomBatches(29, { sequences: 3, batchSize: 3, minLen: 4, maxLen: 9, seed: 2 })

const logits = (c: ModelConfig, p: Params) =>
  tf.tidy(() => forward(c, p, tf.tensor2d(batch.ids, [batch.batchSize, batch.seqLen], "int32")).logits.dataSync())

const live = (seed: number) => liveAdapters(config, spec, seed)

const loss = (params: Params, adapters: Adapters) =>
  tf.tidy(() =>
    nextTokenLoss(
      config,
      withAdapters(params, adapters),
      tf.tensor2d(batch.ids, [batch.batchSize, batch.seqLen], "int32"),
      tf.tensor2d(batch.weights!, [batch.batchSize, batch.seqLen - 1])
    ).dataSync()[0]
  )

describe("low-rank adapters", () => {
  it("a fresh adapter (b = 0) changes nothing", () => {
    const params = initParams(config, 1, 0.3)
    const adapters = initAdapters(config, spec, 7)
    expect(maxAbsDiff(logits(config, withAdapters(params, adapters)), logits(config, params))).toBe(0)
    disposeAdapters(adapters)
    disposeParams(config, params)
  })

  it("the merged weights give the adapter model's logits (1e-5), and merging consumes only what it replaced", () => {
    const params = initParams(config, 2, 0.3)
    const adapters = live(3)
    const adapted = logits(config, withAdapters(params, adapters))
    expect(maxAbsDiff(adapted, logits(config, params))).toBeGreaterThan(1e-3)
    const merged = mergeAdapters(params, adapters)
    expect(maxAbsDiff(logits(config, merged), adapted)).toBeLessThan(1e-5)
    // Merged projections are new tensors; everything else is shared with the input.
    expect(merged.layers[0].q.w).not.toBe(params.layers[0].q.w)
    expect(merged.layers[0].q.b).toBe(params.layers[0].q.b)
    expect(merged.embed).toBe(params.embed)
    const before = numTensors()
    const consumed = mergeAdapters(params, adapters, { consume: true })
    expect(numTensors()).toBe(before) // 14 new weights, 14 replaced ones released
    expect(params.layers[0].q.w.isDisposed).toBe(true)
    disposeParams(config, consumed)
    disposeParams(config, merged)
    disposeAdapters(adapters)
  })

  it("gradients match central finite differences", async () => {
    const params = initParams(config, 4, 0.3)
    const adapters = live(5)
    const { grads } = await Effect.runPromise(adapterGradients(config, params, adapters, batch))
    const named = adapterTensors(adapters)
    const eps = 1e-2
    for (const k of [0, 1, 6, 9, 12, 27]) {
      const values = named[k].tensor.dataSync()
      const gradient = grads[k].dataSync()
      for (const j of [0, Math.floor(values.length / 2), values.length - 1]) {
        const shifted = (delta: number) => {
          const copy = Float32Array.from(values)
          copy[j] += delta
          const replaced = named.map((t, i) => (i === k ? tf.tensor(copy, t.tensor.shape) : t.tensor))
          const value = loss(params, withTensors(adapters, replaced))
          replaced[k].dispose()
          return value
        }
        const numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
        expect(Math.abs(gradient[j] - numeric)).toBeLessThan(1e-3 + 0.02 * Math.abs(numeric))
      }
    }
    tf.dispose(grads)
    disposeAdapters(adapters)
    disposeParams(config, params)
  })

  it("block-by-block gradients (checkpointed, chunked head) equal whole-graph gradients (1e-5), without leaks", async () => {
    const params = initParams(config, 6, 0.3)
    const adapters = live(7)
    const whole = await Effect.runPromise(adapterGradients(config, params, adapters, batch))
    const before = numTensors()
    // Kept whole (a tiny model's default), and cut into micro-batches wherever padding saves rows.
    for (const microBatchOverheadFlops of [Infinity, 0]) {
      const blockwise = await Effect.runPromise(
        blockwiseAdapterGradients(residentSource(config, params, unlimitedRoom), adapters, [lossBatch(batch)], { microBatchOverheadFlops })
      )
      expect(Math.abs(blockwise.losses[0] - whole.loss)).toBeLessThan(1e-5)
      blockwise.grads.forEach((g, k) => expect(maxAbsDiff(g.dataSync(), whole.grads[k].dataSync())).toBeLessThan(1e-5))
      tf.dispose(blockwise.grads)
      expect(numTensors()).toBe(before)
    }
    tf.dispose(whole.grads)
    disposeAdapters(adapters)
    disposeParams(config, params)
  })
})
