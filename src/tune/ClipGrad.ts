/**
 * Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_): when the L2 norm of all
 * gradients together exceeds `maxNorm`, every gradient is scaled by maxNorm / (norm + 1e-6).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { readScalar } from "../model/Read.ts"

/**
 * tf.addN of any number of tensors, seven at a time and in the same order (so the same float sum
 * on cpu and wasm): a WebGPU kernel binds every input, and a device allows 8 storage buffers per
 * kernel unless it asks for more — tfjs's webgpu addN does not split its inputs itself.
 */
const addInOrder = (tensors: ReadonlyArray<tf.Tensor>): tf.Tensor => {
  let sum = tensors[0]
  for (let i = 1; i < tensors.length; i += 6) sum = tf.addN([sum, ...tensors.slice(i, i + 6)])
  return sum
}

/** The L2 norm of all gradients together (computed in a tidy, read after it, then disposed). */
export const globalNorm = (grads: ReadonlyArray<tf.Tensor>): Effect.Effect<number> =>
  Effect.suspend(() => readScalar(tf.tidy(() => tf.sqrt(addInOrder(grads.map((g) => tf.sum(tf.square(g)))))), true))

/** The clipped gradients (new tensors; the inputs are left to the caller) and the norm before clipping. */
export const clipByGlobalNorm = (
  grads: ReadonlyArray<tf.Tensor>,
  maxNorm: number
): Effect.Effect<{ grads: Array<tf.Tensor>; norm: number }> =>
  Effect.map(globalNorm(grads), (norm) => {
    const scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
    return { grads: tf.tidy(() => grads.map((g) => tf.mul(g, scale))), norm }
  })
