/**
 * Importance of whole decoder blocks.
 *
 * - `block-influence` (ShortGPT's Block Influence): 1 − the mean over calibration tokens of
 *   cos(hidden state entering the block, hidden state leaving it). A block that barely turns
 *   the residual stream scores near 0.
 * - `skip-loss`: the increase of the mean next-token loss when the block is skipped, measured:
 *   the model is run once whole and once without each block (a view sharing the tensors, not a
 *   copy). Negative when the model does better without the block.
 */
import * as tf from "@tensorflow/tfjs"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { nextTokenLoss } from "../model/Transformer.ts"
import { type CalibrationBatch, idsTensor, observeBatch, realTokens, tokenMask } from "./Calibration.ts"
import type { LayerScores } from "./Scores.ts"

export const blockInfluenceScores = (
  config: ModelConfig,
  params: Params,
  batches: Iterable<CalibrationBatch>
): LayerScores => {
  const cosSums = new Float64Array(config.layers.length)
  let samples = 0
  let tokens = 0
  for (const batch of batches) {
    const mask = tokenMask(batch)
    const inputs: Array<tf.Tensor2D> = []
    observeBatch(config, params, batch, (i, name, h) => {
      if (name === "block.in") inputs[i] = h
      else if (name === "block.out") {
        const x = inputs[i]
        const dot = tf.sum(tf.mul(x, h), 1, true) // [N, 1]
        const norms = tf.mul(tf.norm(x, "euclidean", 1, true), tf.norm(h, "euclidean", 1, true))
        const cos = tf.div(dot, tf.maximum(norms, 1e-30))
        cosSums[i] += tf.matMul(mask, cos).dataSync()[0]
      }
    })
    mask.dispose()
    samples += batch.batchSize
    tokens += realTokens(batch)
  }
  const perBlock = cosSums.map((c) => 1 - c / Math.max(tokens, 1))
  return { unit: "layers", scorer: "block-influence", perBlock, samples, tokens }
}

/** The model without block `skip`: a view over the same tensors (nothing is copied or released). */
export const withoutBlock = (config: ModelConfig, params: Params, skip: number): { config: ModelConfig; params: Params } => ({
  config: { ...config, layers: config.layers.filter((_, i) => i !== skip) },
  params: { ...params, layers: params.layers.filter((_, i) => i !== skip) }
})

/** Mean next-token loss increase over all counted targets when each block is skipped. */
export const skipLossScores = (
  config: ModelConfig,
  params: Params,
  batches: Iterable<CalibrationBatch>
): LayerScores => {
  const increase = new Float64Array(config.layers.length)
  let samples = 0
  let tokens = 0
  let targets = 0
  for (const batch of batches) {
    const counted = batch.weights!.reduce((a, b) => a + b, 0)
    if (counted === 0) continue
    tf.tidy(() => {
      const ids = idsTensor(batch)
      const weights = tf.tensor2d(batch.weights!, [batch.batchSize, batch.seqLen - 1])
      const whole = nextTokenLoss(config, params, ids, weights).dataSync()[0]
      for (let i = 0; i < config.layers.length; i++) {
        const view = withoutBlock(config, params, i)
        const skipped = nextTokenLoss(view.config, view.params, ids, weights).dataSync()[0]
        increase[i] += (skipped - whole) * counted
      }
    })
    samples += batch.batchSize
    tokens += realTokens(batch)
    targets += counted
  }
  const perBlock = increase.map((x) => x / Math.max(targets, 1))
  return { unit: "layers", scorer: "skip-loss", perBlock, samples, tokens }
}
