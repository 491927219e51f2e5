/**
 * Shared by the ONNX tests: the models they export (a Qwen2 with q/k/v biases and a tied head,
 * a model whose layers differ after global pruning) and the comparisons of an ONNX Runtime
 * session with simmer's tfjs forward (full sequence, left padding, two KV-cache steps).
 */
import { expect } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { join } from "node:path"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import type { Model } from "../../src/model/Model.ts"
import { isUniform } from "../../src/model/ModelConfig.ts"
import { initParams } from "../../src/model/Params.ts"
import { forward } from "../../src/model/Transformer.ts"
import { type DecoderSession, runDecoder } from "../../src/onnx/OrtDecoder.ts"
import { pruneOnce } from "../../src/prune/Prune.ts"
import { randomBatches } from "../prune/_support.ts"
import { maxAbsDiff, tinyConfig } from "../helpers/backend.ts"
import { unlimitedRoom } from "../helpers/room.ts"

/** simmer's logits [B, T, V] for ids [B][T] with optional left padding. */
export const tfjsLogits = (model: Model, ids: Array<Array<number>>, padding?: Array<number>): Float32Array =>
  tf.tidy(() => forward(model.config, model.params, tf.tensor2d(ids, undefined, "int32"), padding ? { padding } : {}).logits.dataSync() as Float32Array)

/** Two KV-cache steps after a prefix (each step's cache fed to the next) equal the full sequence's last logits. */
export const checkCacheStep = (session: DecoderSession, model: Model, ids: Array<number>) =>
  Effect.gen(function*() {
    const V = model.config.vocabSize
    const n = ids.length
    const full = yield* Effect.promise(() => runDecoder(session, model.config, { ids: [ids] }))
    const prefix = yield* Effect.promise(() => runDecoder(session, model.config, { ids: [ids.slice(0, -2)] }))
    const first = yield* Effect.promise(() => runDecoder(session, model.config, { ids: [ids.slice(-2, -1)], cache: prefix.cache }))
    const second = yield* Effect.promise(() => runDecoder(session, model.config, { ids: [ids.slice(-1)], cache: first.cache }))
    expect(second.cache.length).toBe(n)
    expect(maxAbsDiff(first.logits, full.logits.subarray((n - 2) * V, (n - 1) * V))).toBeLessThan(1e-5)
    expect(maxAbsDiff(second.logits, full.logits.subarray((n - 1) * V))).toBeLessThan(1e-5)
  })

/** A batch of two, then the same with the first row left-padded, then a cache step: all within 1e-4 of tfjs. */
export const checkAgainstTfjs = (session: DecoderSession, model: Model) =>
  Effect.gen(function*() {
    const V = model.config.vocabSize
    const ids = [[3, 1, 7, 2, 9, 4, 1], [5, 5, 2, 8, 6, 0, 3]]
    const ort = yield* Effect.promise(() => runDecoder(session, model.config, { ids }))
    expect(maxAbsDiff(ort.logits, tfjsLogits(model, ids))).toBeLessThan(1e-4)
    // Left padding: two pad slots, masked out, positions counted from the first real token (as transformers.js feeds them).
    const padded = [[0, 0, 7, 2, 9, 4, 1], ids[1]]
    const attentionMask = [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]]
    const positions = [[1, 1, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6]]
    const ortPadded = yield* Effect.promise(() => runDecoder(session, model.config, { ids: padded, attentionMask, positions }))
    // Only real positions: what padding slots compute is meaningless in both.
    const real = (x: Float32Array) => [...x.subarray(2 * V, 7 * V), ...x.subarray(7 * V)]
    expect(maxAbsDiff(real(ortPadded.logits), real(tfjsLogits(model, padded, [2, 0])))).toBeLessThan(1e-4)
    yield* checkCacheStep(session, model, ids[0])
  })

/** A Qwen2 model with non-zero q/k/v biases (so a bias left out shows) and a tied head. */
export const biasedQwen2 = (): Model => {
  const config = tinyConfig({ architecture: "qwen2", vocabSize: 13, tieWordEmbeddings: true, qkvBias: true }, { numLayers: 2 })
  const params = initParams(config, 5, 0.3)
  const bias = (size: number, seed: number) => tf.randomNormal([size], 0, 0.3, "float32", seed) as tf.Tensor1D
  const { numHeads, numKeyValueHeads } = config.layers[0]
  const hd = config.headDim
  return {
    config,
    params: {
      ...params,
      layers: params.layers.map((l, i) => {
        for (const b of [l.q.b, l.k.b, l.v.b]) b?.dispose()
        return {
          ...l,
          q: { ...l.q, b: bias(numHeads * hd, 3 * i + 1) },
          k: { ...l.k, b: bias(numKeyValueHeads * hd, 3 * i + 2) },
          v: { ...l.v, b: bias(numKeyValueHeads * hd, 3 * i + 3) }
        }
      })
    }
  }
}

/**
 * A model whose layers differ in MLP width and key/value groups (`layer_shapes`): pruned with
 * global allocation, neurons then heads, with Llama 3 RoPE scaling on top.
 */
export const layerShapesModel = () =>
  Effect.gen(function*() {
    const base = tinyConfig({
      vocabSize: 13,
      ropeScaling: { kind: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 }
    }, { numLayers: 3, numHeads: 4, numKeyValueHeads: 4 })
    const data = { task: randomBatches(13, { sequences: 8, batchSize: 4, minLen: 3, maxLen: 10, seed: 3 }) }
    const original = initParams(base, 7, 0.3)
    const neurons = yield* pruneOnce(base, original, unlimitedRoom, { unit: "neurons", scorer: "activation", target: { kind: "fraction", keep: 0.5 }, allocation: "global" }, data)
    const heads = yield* pruneOnce(neurons.model.config, neurons.model.params, unlimitedRoom, { unit: "heads", scorer: "contribution", target: { kind: "fraction", keep: 0.5 }, allocation: "global" }, data)
    const model = heads.model
    expect(isUniform(model.config)).toBe(false)
    expect(new Set(model.config.layers.map((l) => l.numKeyValueHeads)).size).toBeGreaterThan(1)
    return model
  })

/**
 * The models the engines are compared on: the transformers fixture (Llama, GQA, untied head), a
 * Qwen2 with q/k/v biases and a tied head, and a `layer_shapes` model.
 */
export const engineFixtures: ReadonlyArray<{ readonly name: string; readonly model: () => Effect.Effect<Model, unknown> }> = [
  { name: "the transformers fixture", model: () => loadCheckpoint(join(import.meta.dirname, "../fixtures/hf-llama-gqa-f32")) },
  { name: "a Qwen2 with biases and a tied head", model: () => Effect.sync(biasedQwen2) },
  { name: "a layer_shapes model", model: layerShapesModel }
]
