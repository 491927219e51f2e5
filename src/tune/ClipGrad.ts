/**
 * Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_): when the L2 norm of all
 * gradients together exceeds `maxNorm`, every gradient is scaled by maxNorm / (norm + 1e-6).
 */
import * as tf from "@tensorflow/tfjs"

export const globalNorm = (grads: ReadonlyArray<tf.Tensor>): number =>
  tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g))))).dataSync()[0])

/** The clipped gradients (new tensors; the inputs are left to the caller) and the norm before clipping. */
export const clipByGlobalNorm = (
  grads: ReadonlyArray<tf.Tensor>,
  maxNorm: number
): { grads: Array<tf.Tensor>; norm: number } => {
  const norm = globalNorm(grads)
  const scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
  return { grads: tf.tidy(() => grads.map((g) => tf.mul(g, scale))), norm }
}
