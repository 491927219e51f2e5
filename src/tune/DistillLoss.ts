/**
 * Distillation (Hinton et al.; Minitron recovers pruned models this way): the student learns the
 * teacher's whole next-token distribution instead of only the token that happened to follow.
 *
 *   KL      Σ_v p_T(v) · (log p_T(v) − log p_S(v)), p = softmax(logits / T), per position
 *   loss    (1 − α) · T² · mean KL  +  α · mean cross-entropy of the data (the SFT loss at T = 1)
 *
 * averaged over the positions that count (completion tokens for SFT-style data, every token of
 * plain text). T² keeps the gradient's scale independent of the temperature, as in Hinton's
 * paper. The teacher's log-probs are inputs: whoever calls decides whether they are computed on
 * the fly or cached.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { TokenBatch } from "../model/Gradients.ts"
import { countedTargets, valueAndParamGrads } from "../model/Gradients.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { readFloats } from "../model/Read.ts"
import { forward } from "../model/Transformer.ts"

export interface DistillOptions {
  /** Softmax temperature of both distributions. */
  readonly temperature: number
  /** Weight of the plain next-token loss; 0 is pure distillation. */
  readonly alpha: number
}

/** Logits [B·(T−1), V] of every position that predicts a next token. */
const positionLogits = (config: ModelConfig, params: Params, ids: tf.Tensor2D): tf.Tensor2D => {
  const [B, T] = ids.shape
  return tf.reshape(forward(config, params, tf.slice(ids, [0, 0], [B, T - 1])).logits, [B * (T - 1), config.vocabSize])
}

/** log softmax(logits / temperature) of logits [N, V]. */
export const logProbsAt = (logits: tf.Tensor2D, temperature: number): tf.Tensor2D =>
  tf.logSoftmax(temperature === 1 ? logits : tf.div(logits, temperature)) as tf.Tensor2D

const batchIds = (batch: TokenBatch) => tf.tensor2d(batch.ids, [batch.batchSize, batch.seqLen], "int32")

const batchWeights = (batch: TokenBatch): tf.Tensor1D =>
  batch.weights === undefined
    ? tf.ones([batch.batchSize * (batch.seqLen - 1)])
    : tf.tensor1d(batch.weights, "float32")

/** The teacher's log-probs for a batch, [B·(T−1), V]; the caller disposes them. */
export const teacherLogProbs = (config: ModelConfig, params: Params, batch: TokenBatch, temperature: number): tf.Tensor2D =>
  tf.tidy(() => logProbsAt(positionLogits(config, params, batchIds(batch)), temperature))

/** KL(teacher ‖ student) per position, from log-probs [N, V] of both. */
export const distributionKl = (teacher: tf.Tensor2D, student: tf.Tensor2D): tf.Tensor1D =>
  tf.tidy(() => tf.sum(tf.mul(tf.exp(teacher), tf.sub(teacher, student)), -1) as tf.Tensor1D)

export interface DistillLossResult {
  readonly loss: number
  /** Mean KL(teacher ‖ student) at the temperature, over the counted positions. */
  readonly kl: number
  /** Mean cross-entropy of the data at temperature 1. */
  readonly crossEntropy: number
  readonly targets: number
  /** One gradient per parameter, in paramSpecs order; the caller disposes them. */
  readonly grads: Array<tf.Tensor>
}

/** The distillation loss of `params` on `batch` against the teacher's log-probs, and its gradient. */
export const distillLossAndGradients = (
  config: ModelConfig,
  params: Params,
  batch: TokenBatch,
  teacher: tf.Tensor2D,
  options: DistillOptions
): Effect.Effect<DistillLossResult> => Effect.gen(function*() {
  const T = options.temperature
  let kl: tf.Scalar | undefined
  let crossEntropy: tf.Scalar | undefined
  const { value, grads } = yield* valueAndParamGrads(config, params, (student) => {
    const ids = batchIds(batch)
    const weights = batchWeights(batch)
    const count = tf.maximum(tf.sum(weights), 1)
    const targets = tf.oneHot(tf.reshape(tf.slice(ids, [0, 1], [batch.batchSize, batch.seqLen - 1]), [-1]), config.vocabSize)
    const logits = positionLogits(config, student, ids)
    const klMean = tf.div(tf.sum(tf.mul(distributionKl(teacher, logProbsAt(logits, T)), weights)), count) as tf.Scalar
    const ceMean = tf.div(tf.neg(tf.sum(tf.mul(tf.sum(tf.mul(tf.logSoftmax(logits), targets), -1), weights))), count) as tf.Scalar
    // Measurements of the same forward, kept past the gradient's tidy.
    kl = tf.keep(klMean)
    crossEntropy = tf.keep(ceMean)
    return tf.add(tf.mul(klMean, (1 - options.alpha) * T * T), tf.mul(ceMean, options.alpha)) as tf.Scalar
  })
  // Both measurements in one read.
  const measured = yield* readFloats(tf.stack([kl!, crossEntropy!]), true)
  tf.dispose([kl!, crossEntropy!])
  return { loss: value, kl: measured[0], crossEntropy: measured[1], targets: countedTargets(batch), grads }
})
