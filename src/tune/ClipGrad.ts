/**
 * Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_): when the L2 norm of all
 * gradients together exceeds `maxNorm`, every gradient is scaled by maxNorm / (norm + 1e-6).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { readScalar } from "../model/Read.ts"

/**
 * The L2 norm of all gradients together (computed in a tidy, read after it, then disposed). The
 * squares are summed pairwise, in order (as addN does on cpu and wasm): webgpu's AddN binds one
 * storage buffer per input, and a device allows 8 per kernel, so addN over a model's gradients
 * is rejected there.
 */
export const globalNorm = (grads: ReadonlyArray<tf.Tensor>): Effect.Effect<number> =>
  Effect.suspend(() => readScalar(tf.tidy(() => tf.sqrt(grads.map((g) => tf.sum(tf.square(g))).reduce((a, b) => tf.add(a, b)))), true))

/** The clipped gradients (new tensors; the inputs are left to the caller) and the norm before clipping. */
export const clipByGlobalNorm = (
  grads: ReadonlyArray<tf.Tensor>,
  maxNorm: number
): Effect.Effect<{ grads: Array<tf.Tensor>; norm: number }> =>
  Effect.map(globalNorm(grads), (norm) => {
    const scale = norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
    return { grads: tf.tidy(() => grads.map((g) => tf.mul(g, scale))), norm }
  })
