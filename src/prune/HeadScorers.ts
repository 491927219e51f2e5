/**
 * Importance of attention key/value groups: one KV head together with the R = H / KV query heads
 * that read it. Pruning whole groups keeps every layer GQA-legal (query heads stay a multiple of
 * key/value heads) and hidden_size unchanged.
 *
 * `contribution`: the mean over calibration tokens of ‖context_g · W_o[g]‖₂, the norm of the
 * group's share of the attention output (its R heads' merged context times the matching rows of
 * o_proj, internal orientation). o_proj's bias belongs to no group and is left out.
 */
import * as tf from "@tensorflow/tfjs"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { type CalibrationBatch, observeBatch, realTokens, tokenMask } from "./Calibration.ts"
import type { HeadScores } from "./Scores.ts"

export const contributionScores = (
  config: ModelConfig,
  params: Params,
  batches: Iterable<CalibrationBatch>
): HeadScores => {
  const sums = config.layers.map((layer) => new Float64Array(layer.numKeyValueHeads))
  let samples = 0
  let tokens = 0
  for (const batch of batches) {
    const mask = tokenMask(batch)
    observeBatch(config, params, batch, (i, name, merged) => {
      if (name !== "attn.context") return
      const shape = config.layers[i]
      const width = (shape.numHeads / shape.numKeyValueHeads) * config.headDim // R * hd columns per group
      const [N] = merged.shape
      const o = params.layers[i].o.w // [H*hd, D]
      const perGroup = Array.from({ length: shape.numKeyValueHeads }, (_, g) => {
        const part = tf.matMul(tf.slice(merged, [0, g * width], [N, width]), tf.slice(o, [g * width, 0], [width, o.shape[1]]))
        return tf.sqrt(tf.sum(tf.square(part), 1)) // [N]
      })
      const norms = tf.stack(perGroup, 1) as tf.Tensor2D // [N, KV]
      const data = tf.matMul(mask, norms).dataSync()
      for (let g = 0; g < data.length; g++) sums[i][g] += data[g]
    })
    mask.dispose()
    samples += batch.batchSize
    tokens += realTokens(batch)
  }
  for (const s of sums) for (let g = 0; g < s.length; g++) s[g] /= Math.max(tokens, 1)
  return { unit: "heads", scorer: "contribution", perLayer: sums, samples, tokens }
}
