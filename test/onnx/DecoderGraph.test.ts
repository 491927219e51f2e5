/**
 * The ONNX decoder graph run by ONNX Runtime (CPU) against transformers' own logits (the
 * fixture) and simmer's tfjs forward on the cpu backend: a Llama with GQA and an untied head,
 * a Qwen2 with q/k/v biases and a tied head, and a model whose layers differ (`layer_shapes`,
 * pruned with global allocation); full-sequence logits, one KV-cache step and left padding.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { loadCheckpoint } from "../../src/io/Checkpoint.ts"
import type { Model } from "../../src/model/Model.ts"
import { isUniform, type ModelConfig } from "../../src/model/ModelConfig.ts"
import { disposeParams, initParams } from "../../src/model/Params.ts"
import { forward } from "../../src/model/Transformer.ts"
import { modelGraph } from "../../src/onnx/ModelGraph.ts"
import { encodeModel } from "../../src/onnx/OnnxFile.ts"
import { openDecoderSession, runDecoder } from "../../src/onnx/OrtDecoder.ts"
import { pruneOnce } from "../../src/prune/Prune.ts"
import { randomBatches } from "../prune/_support.ts"
import { maxAbsDiff, tinyConfig, useBackend } from "../helpers/backend.ts"

beforeAll(() => useBackend("cpu"))

const fixture = join(import.meta.dirname, "../fixtures/hf-llama-gqa-f32")
interface Reference {
  readonly inputs: ReadonlyArray<{ name: string; input_ids: Array<number>; logits: Array<Array<number>> }>
}
const reference: Reference = JSON.parse(readFileSync(join(fixture, "reference.json"), "utf8"))

const session = (model: Model) => Effect.promise(() => openDecoderSession(encodeModel(modelGraph(model)).model))

/** simmer's logits [B, T, V] for ids [B][T] with optional left padding. */
const tfjsLogits = (model: Model, ids: Array<Array<number>>, padding?: Array<number>): Float32Array =>
  tf.tidy(() => forward(model.config, model.params, tf.tensor2d(ids, undefined, "int32"), padding ? { padding } : {}).logits.dataSync() as Float32Array)

/** One KV-cache step after a prefix equals the full-sequence logits of the last position. */
const checkCacheStep = (model: Model, ids: Array<number>) =>
  Effect.gen(function*() {
    const s = yield* session(model)
    const V = model.config.vocabSize
    const full = yield* Effect.promise(() => runDecoder(s, model.config, { ids: [ids] }))
    const prefix = yield* Effect.promise(() => runDecoder(s, model.config, { ids: [ids.slice(0, -1)] }))
    const step = yield* Effect.promise(() => runDecoder(s, model.config, { ids: [ids.slice(-1)], past: prefix.present }))
    expect(step.present[0].key.dims[2]).toBe(ids.length)
    expect(maxAbsDiff(step.logits, full.logits.subarray((ids.length - 1) * V))).toBeLessThan(1e-5)
  })

const checkAgainstTfjs = (model: Model) =>
  Effect.gen(function*() {
    const s = yield* session(model)
    const V = model.config.vocabSize
    const ids = [[3, 1, 7, 2, 9, 4, 1], [5, 5, 2, 8, 6, 0, 3]]
    const ort = yield* Effect.promise(() => runDecoder(s, model.config, { ids }))
    expect(maxAbsDiff(ort.logits, tfjsLogits(model, ids))).toBeLessThan(1e-4)
    // Left padding: the first row has two pad slots, masked out and positions counted from its first real token.
    const padded = [[0, 0, 7, 2, 9, 4, 1], ids[1]]
    const mask = [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]]
    const positions = [[1, 1, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6]]
    const ortPadded = yield* Effect.promise(() => runDecoder(s, model.config, { ids: padded, attentionMask: mask, positions }))
    const tfjsPadded = tfjsLogits(model, padded, [2, 0])
    // Only real positions: padding rows' outputs are meaningless in both.
    const real = (x: Float32Array) => [...x.subarray(2 * V, 7 * V), ...x.subarray(7 * V)]
    expect(maxAbsDiff(real(ortPadded.logits), real(tfjsPadded))).toBeLessThan(1e-4)
    yield* checkCacheStep(model, ids[0])
  })

describe("the ONNX decoder graph in ONNX Runtime", () => {
  it.effect("matches transformers' logits on the Llama GQA fixture, and simmer's forward", () =>
    Effect.gen(function*() {
      const model = yield* loadCheckpoint(fixture)
      const s = yield* session(model)
      for (const input of reference.inputs) {
        const { logits } = yield* Effect.promise(() => runDecoder(s, model.config, { ids: [input.input_ids] }))
        expect(maxAbsDiff(logits, input.logits.flat()), input.name).toBeLessThan(1e-4)
        expect(maxAbsDiff(logits, tfjsLogits(model, [input.input_ids])), input.name).toBeLessThan(1e-4)
      }
      yield* checkCacheStep(model, reference.inputs[2].input_ids)
      disposeParams(model.config, model.params)
    }))

  it.effect("matches simmer's forward on a Qwen2 model with q/k/v biases and a tied head", () =>
    Effect.gen(function*() {
      const config = tinyConfig({ architecture: "qwen2", vocabSize: 13, tieWordEmbeddings: true, qkvBias: true }, { numLayers: 2 })
      const params = initParams(config, 5, 0.3)
      // Non-zero biases, so that a bias left out shows.
      const model: Model = {
        config,
        params: {
          ...params,
          layers: params.layers.map((l) => ({
            ...l,
            q: { ...l.q, b: tf.randomNormal([config.layers[0].numHeads * config.headDim], 0, 0.3, "float32", 1) as tf.Tensor1D },
            k: { ...l.k, b: tf.randomNormal([config.layers[0].numKeyValueHeads * config.headDim], 0, 0.3, "float32", 2) as tf.Tensor1D },
            v: { ...l.v, b: tf.randomNormal([config.layers[0].numKeyValueHeads * config.headDim], 0, 0.3, "float32", 3) as tf.Tensor1D }
          }))
        }
      }
      yield* checkAgainstTfjs(model)
    }))

  it.effect("matches simmer's forward on a model with layers of different widths (layer_shapes)", () =>
    Effect.gen(function*() {
      const base: ModelConfig = tinyConfig({ vocabSize: 13, ropeScaling: { kind: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 } }, { numLayers: 3, numHeads: 4, numKeyValueHeads: 4 })
      const data = { task: randomBatches(13, { sequences: 8, batchSize: 4, minLen: 3, maxLen: 10, seed: 3 }) }
      const original = initParams(base, 7, 0.3)
      const neurons = yield* pruneOnce(base, original, { unit: "neurons", scorer: "activation", target: { kind: "fraction", keep: 0.5 }, allocation: "global" }, data)
      const heads = yield* pruneOnce(neurons.model.config, neurons.model.params, { unit: "heads", scorer: "contribution", target: { kind: "fraction", keep: 0.5 }, allocation: "global" }, data)
      const model = heads.model
      expect(isUniform(model.config)).toBe(false)
      expect(new Set(model.config.layers.map((l) => l.numKeyValueHeads)).size).toBeGreaterThan(1)
      yield* checkAgainstTfjs(model)
    }))
})
