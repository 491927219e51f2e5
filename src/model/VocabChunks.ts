/**
 * Next-token log-probabilities of given targets with the LM head split into vocabulary chunks,
 * inside autodiff: for a backend that cannot bind the batch's full-vocabulary logits in one
 * buffer (WebGPU: the adapter's maxStorageBufferBindingSize, 128 MiB on lavapipe; 8 × 512
 * tokens over a 151,936-token vocabulary are 2.5 GB). Each chunk's log-sum-exp is taken on its
 * own and the chunks' are combined, log p(t) = head_t · h − log Σ_chunks exp(lse_chunk), so no
 * tensor larger than one chunk of logits exists. (ChunkedLoss.ts does the same outside autodiff
 * for the block-by-block passes.)
 */
import * as tf from "@tensorflow/tfjs"
import { activeBindingLimitBytes } from "../compute/WebGpu.ts"
import { linear } from "./Linear.ts"
import type { ModelConfig } from "./ModelConfig.ts"
import type { Params } from "./Params.ts"

/**
 * Vocabulary rows per chunk so that `rows` rows of logits (and the head's chunk) fit one binding
 * of the active backend; the whole vocabulary when it fits (every backend but webgpu).
 */
export const headChunkRows = (config: ModelConfig, rows: number): number => {
  const limit = activeBindingLimitBytes()
  const fit = Math.floor(limit / 4 / Math.max(rows, config.hiddenSize))
  return Math.max(1, Math.min(config.vocabSize, fit))
}

/**
 * log p(targets[n]) under the LM head for final hidden states [N, D], at `temperature` (the
 * softmax of logits / temperature), chunk rows of the vocabulary at a time: [N].
 */
export const chunkedTargetLogProbs = (
  config: ModelConfig,
  params: Params,
  final: tf.Tensor2D,
  targets: tf.Tensor1D,
  chunk: number,
  temperature = 1
): tf.Tensor1D => {
  const scaled = (logits: tf.Tensor) => (temperature === 1 ? logits : tf.div(logits, temperature))
  const V = config.vocabSize
  const sizes = Array.from({ length: Math.ceil(V / chunk) }, (_, i) => Math.min(chunk, V - i * chunk))
  const head = params.lmHead
  // Split once: the gradient of a split is one concat, where slices would each pad a full-size gradient.
  const lses = head !== undefined
    ? zipSplits(tf.split(head.w, sizes, 1), head.b === undefined ? undefined : tf.split(head.b, sizes)).map(({ w, b }) =>
      tf.logSumExp(scaled(linear(final, b === undefined ? { w } : { w, b })), 1))
    : tf.split(params.embed, sizes, 0).map((rows) => tf.logSumExp(scaled(tf.matMul(final, rows, false, true)), 1))
  const lse = tf.logSumExp(tf.stack(lses, 1), 1)
  const targetRows = head !== undefined ? tf.transpose(tf.gather(head.w, targets, 1)) : tf.gather(params.embed, targets)
  let targetLogits = tf.sum(tf.mul(final, targetRows), 1)
  if (head?.b !== undefined) targetLogits = tf.add(targetLogits, tf.gather(head.b, targets))
  return tf.sub(scaled(targetLogits), lse) as tf.Tensor1D
}

const zipSplits = (ws: ReadonlyArray<tf.Tensor>, bs: ReadonlyArray<tf.Tensor> | undefined) =>
  ws.map((w, i) => ({ w: w as tf.Tensor2D, b: bs?.[i] as tf.Tensor1D | undefined }))
