/**
 * The activation and wanda neuron scorers on ONNX Runtime: one calibration pass per batch over
 * a session on the model's weights whose graph reduces each layer's MLP activation to its sums
 * over the batch's real tokens (DecoderGraph.ts, `mlpStatistics`), so only [I] floats per
 * layer come back. Same definitions as NeuronScorers.ts: mean |a| over tokens, and
 * ‖down_proj row‖₂ · √Σ a². The whole model is in one session (its weights mapped from a
 * temporary file, about their size again in pre-packed copies), unlike tfjs's block-by-block pass.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { Model } from "../model/Model.ts"
import { readFloats } from "../model/Read.ts"
import { openGraphSession } from "../onnx/GraphSession.ts"
import { modelWeights } from "../onnx/ModelSession.ts"
import { runMlpStatistics } from "../onnx/OrtDecoder.ts"
import { accumulate, type CalibrationBatch, realTokens } from "./Calibration.ts"
import type { NeuronScores } from "./Scores.ts"

/** Σ |a| and Σ a² over the batches' real tokens, per layer and neuron. */
const mlpSums = (model: Model, batches: ReadonlyArray<CalibrationBatch>) =>
  Effect.scoped(Effect.gen(function*() {
    // A temporary model file that cannot be written (beyond the protobuf limit) is a defect here, as for rollouts.
    const session = yield* Effect.orDie(openGraphSession(model.config, modelWeights(model), { head: "none", mlpStatistics: true }))
    const abs = model.config.layers.map((l) => new Float64Array(l.intermediateSize))
    const square = model.config.layers.map((l) => new Float64Array(l.intermediateSize))
    for (const batch of batches) {
      const T = batch.seqLen
      const ids = Array.from({ length: batch.batchSize }, (_, b) => Array.from(batch.ids.subarray(b * T, b * T + T)))
      const mask = new Float32Array(batch.batchSize * T)
      batch.lengths.forEach((n, b) => mask.fill(1, b * T, b * T + n))
      const sums = yield* Effect.promise(() => runMlpStatistics(session, model.config, ids, mask))
      sums.forEach((s, i) => {
        accumulate(abs[i], s.abs)
        accumulate(square[i], s.square)
      })
    }
    return {
      abs,
      square,
      samples: batches.reduce((n, b) => n + b.batchSize, 0),
      tokens: batches.reduce((n, b) => n + realTokens(b), 0)
    }
  }))

export const ortActivationScores = (model: Model, batches: ReadonlyArray<CalibrationBatch>) =>
  Effect.map(mlpSums(model, batches), ({ abs, samples, tokens }): NeuronScores => {
    for (const s of abs) for (let j = 0; j < s.length; j++) s[j] /= Math.max(tokens, 1)
    return { unit: "neurons", scorer: "activation", perLayer: abs, samples, tokens }
  })

export const ortWandaScores = (model: Model, batches: ReadonlyArray<CalibrationBatch>) =>
  Effect.gen(function*() {
    const { square, samples, tokens } = yield* mlpSums(model, batches)
    const perLayer: Array<Float64Array> = []
    for (const [i, layer] of model.params.layers.entries()) {
      const norms = yield* readFloats(tf.norm(layer.down.w, "euclidean", 1), true)
      perLayer.push(square[i].map((s, j) => Math.sqrt(s) * norms[j]))
    }
    return { unit: "neurons", scorer: "wanda", perLayer, samples, tokens } satisfies NeuronScores
  })
