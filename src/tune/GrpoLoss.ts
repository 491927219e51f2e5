/**
 * The GRPO loss of one rollout batch and its gradient with respect to the weights.
 *
 * A rollout batch holds each sequence as the model saw it while sampling: the prompt
 * left-padded to the longest prompt, then the completion, right-padded to the longest
 * completion: [pad… prompt | completion …pad], P + C slots. Left padding is masked and
 * positions count from the first real token (as in decoding); right padding comes after every
 * position that is read, so causal attention never sees it. Only the C positions that predict
 * completion tokens go through the LM head.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { valueAndParamGrads } from "../model/Gradients.ts"
import type { Params } from "../model/Params.ts"
import { readFloats } from "../model/Read.ts"
import { hiddenStates, targetLogProbs } from "../model/Transformer.ts"
import { clippedTokens, type GrpoObjectiveOptions, grpoTokenLoss, k3Kl, tokenMean } from "./GrpoObjective.ts"
import type { Rollout } from "./Rollouts.ts"

export interface RolloutBatch {
  /** [B, P + C] token ids, row-major. */
  readonly ids: Int32Array
  readonly batchSize: number
  /** Longest prompt. */
  readonly promptLength: number
  /** Longest completion. */
  readonly completionLength: number
  /** Left padding of each row. */
  readonly padding: ReadonlyArray<number>
  /** [B, C]: 1 for a completion token, 0 for padding. */
  readonly mask: Float32Array
  /** [B, C]: log-probs under the policy that sampled (0 at padding). */
  readonly oldLogProbs: Float32Array
  /** [B]: one advantage per sequence. */
  readonly advantages: Float32Array
}

/** The batch of `rollouts` of `prompts` (prompt ids by `Rollout.prompt`), with one advantage each. */
export const buildRolloutBatch = (
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  rollouts: ReadonlyArray<Rollout>,
  advantages: ReadonlyArray<number>,
  padId: number
): RolloutBatch => {
  const B = rollouts.length
  const P = Math.max(...rollouts.map((r) => prompts[r.prompt].length))
  const C = Math.max(1, ...rollouts.map((r) => r.completion.length))
  const ids = new Int32Array(B * (P + C)).fill(padId)
  const mask = new Float32Array(B * C)
  const oldLogProbs = new Float32Array(B * C)
  const padding = rollouts.map((r) => P - prompts[r.prompt].length)
  rollouts.forEach((r, b) => {
    const row = b * (P + C)
    prompts[r.prompt].forEach((id, t) => (ids[row + padding[b] + t] = id))
    r.completion.forEach((id, t) => {
      ids[row + P + t] = id
      mask[b * C + t] = 1
      oldLogProbs[b * C + t] = r.logProbs[t]
    })
  })
  return { ids, batchSize: B, promptLength: P, completionLength: C, padding, mask, oldLogProbs, advantages: Float32Array.from(advantages) }
}

/** [B, C] log-probs of the completion tokens at `temperature` (logits / T), as a tensor. */
const completionLogProbs = (config: ModelConfig, params: Params, batch: RolloutBatch, temperature: number): tf.Tensor2D =>
  tf.tidy(() => {
    const { batchSize: B, promptLength: P, completionLength: C } = batch
    const L = P + C
    const ids = tf.tensor2d(batch.ids, [B, L], "int32")
    const inputs = tf.slice(ids, [0, 0], [B, L - 1])
    const padded = batch.padding.some((p) => p > 0)
    const { hidden } = hiddenStates(config, params, inputs, padded ? { padding: batch.padding } : {}) // [B*(L-1), D]
    const D = config.hiddenSize
    // Positions P-1 .. L-2 predict the completion tokens P .. L-1.
    const reading = tf.reshape(tf.slice(tf.reshape(hidden, [B, L - 1, D]), [0, P - 1, 0], [B, C, D]), [B * C, D]) as tf.Tensor2D
    const targets = tf.reshape(tf.slice(ids, [0, P], [B, C]), [B * C]) as tf.Tensor1D
    const picked = targetLogProbs(config, params, reading, targets, temperature > 0 ? temperature : 1)
    return tf.reshape(picked, [B, C]) as tf.Tensor2D
  })

/** The log-probs of the batch's completion tokens under `params` ([B, C], 0 at padding): the reference's, for the KL. */
export const sequenceLogProbs = (config: ModelConfig, params: Params, batch: RolloutBatch, temperature: number): Effect.Effect<Float32Array> =>
  Effect.suspend(() =>
    readFloats(
      tf.tidy(() => tf.mul(completionLogProbs(config, params, batch, temperature), tf.tensor2d(batch.mask, [batch.batchSize, batch.completionLength]))),
      true
    )
  )

export interface GrpoLossOptions extends GrpoObjectiveOptions {
  readonly temperature: number
}

export interface GrpoLossResult {
  /** The token-mean loss. */
  readonly loss: number
  /** Token-mean k3 KL to the reference. */
  readonly kl: number
  /** Fraction of completion tokens whose gradient clipping removed. */
  readonly clipFraction: number
  /** Completion tokens that counted. */
  readonly tokens: number
  /** One gradient per parameter, in paramSpecs order; the caller disposes them. */
  readonly grads: Array<tf.Tensor>
}

/** The GRPO loss of `params` on `batch` (with the reference's log-probs `refLogProbs`) and its gradient. */
export const grpoLossAndGradients = (
  config: ModelConfig,
  params: Params,
  batch: RolloutBatch,
  refLogProbs: Float32Array,
  options: GrpoLossOptions
): Effect.Effect<GrpoLossResult> => Effect.gen(function*() {
  const shape: [number, number] = [batch.batchSize, batch.completionLength]
  let kl: tf.Scalar | undefined
  let clipped: tf.Scalar | undefined
  const { value, grads } = yield* valueAndParamGrads(config, params, (p) => {
    const mask = tf.tensor2d(batch.mask, shape)
    const old = tf.tensor2d(batch.oldLogProbs, shape)
    const ref = tf.tensor2d(refLogProbs, shape)
    const advantages = tf.tensor2d(batch.advantages, [batch.batchSize, 1])
    const logProbs = completionLogProbs(config, p, batch, options.temperature)
    // Measurements of the same forward, kept past the gradient's tidy (they carry no gradient).
    kl = tf.keep(tokenMean(k3Kl(logProbs, ref), mask))
    clipped = tf.keep(tokenMean(clippedTokens(logProbs, old, advantages, options.clip), mask))
    return tokenMean(grpoTokenLoss(logProbs, old, ref, advantages, options), mask)
  })
  // Both measurements in one read.
  const measured = yield* readFloats(tf.stack([kl!, clipped!]), true)
  tf.dispose([kl!, clipped!])
  return { loss: value, kl: measured[0], clipFraction: measured[1], tokens: batch.mask.reduce((a, b) => a + b, 0), grads }
})
