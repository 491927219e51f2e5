/**
 * Loss and gradients of the next-token loss for one batch of token ids: the unit of work of
 * every trainer, and what data-parallel workers compute on their share of a batch.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import type { ModelConfig } from "./ModelConfig.ts"
import { assembleParams, paramSpecs, type Params, paramTensors } from "./Params.ts"
import { readScalar } from "./Read.ts"
import { nextTokenLoss } from "./Transformer.ts"

/** Computing loss and gradients failed (in this thread or in a worker). */
export class GradientsFailed extends Schema.TaggedError<GradientsFailed>()("GradientsFailed", {
  message: Schema.String
}) {}

/** Token ids [batchSize, seqLen], row-major; weights [batchSize, seqLen - 1] mask targets. */
export interface TokenBatch {
  readonly ids: Int32Array
  readonly weights?: Float32Array
  readonly batchSize: number
  readonly seqLen: number
}

export interface LossAndGradients {
  /** Mean loss over the counted targets. */
  readonly loss: number
  /** Number of counted targets (sum of weights): how shards of a batch are combined. */
  readonly targets: number
  /** One gradient per parameter, in paramSpecs order and internal orientation. */
  readonly grads: Array<tf.Tensor>
}

export const countedTargets = (batch: TokenBatch): number =>
  batch.weights === undefined
    ? batch.batchSize * (batch.seqLen - 1)
    : batch.weights.reduce((a, b) => a + b, 0)

/**
 * A scalar function of the weights (built inside, so its intermediates are released) and its
 * gradient with respect to every weight, in paramSpecs order; the caller disposes the gradients.
 * An Effect: the value is read asynchronously after the tidy (tidy cannot span an await).
 */
export const valueAndParamGrads = (
  config: ModelConfig,
  params: Params,
  f: (params: Params) => tf.Scalar
): Effect.Effect<{ readonly value: number; readonly grads: Array<tf.Tensor> }> => Effect.suspend(() => {
  const index = new Map(paramSpecs(config).map((spec, i) => [spec.name, i]))
  const { value, grads } = tf.tidy(() =>
    tf.valueAndGrads((...tensors: Array<tf.Tensor>) => f(assembleParams(config, (name) => tensors[index.get(name)!])))(
      paramTensors(config, params)
    )
  )
  return Effect.map(readScalar(value, true), (number) => ({ value: number, grads }))
})

export const lossAndGradients = (config: ModelConfig, params: Params, batch: TokenBatch): Effect.Effect<LossAndGradients> =>
  Effect.map(valueAndParamGrads(config, params, (p) => {
    const ids = tf.tensor2d(batch.ids, [batch.batchSize, batch.seqLen], "int32")
    const weights = batch.weights === undefined
      ? undefined
      : tf.tensor2d(batch.weights, [batch.batchSize, batch.seqLen - 1], "float32")
    return nextTokenLoss(config, p, ids, weights)
  }), ({ value, grads }) => ({ loss: value, targets: countedTargets(batch), grads }))
