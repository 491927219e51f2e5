/**
 * `x @ w` for 2-D tensors with a hand-written gradient.
 *
 * tfjs' own gradient of matMul uses the transposeA/transposeB flags, which on the wasm backend
 * leave XNNPACK's fast path (measured: ~40 GFLOP/s plain, 1-4 GFLOP/s transposed). Here both
 * backward products are plain 2-D matMuls of explicitly transposed operands; the transposes
 * are O(n²) copies next to O(n³) products.
 */
import * as tf from "@tensorflow/tfjs"
import type { Linear } from "./Params.ts"

export const matMul2d = tf.customGrad(
  (x: tf.Tensor | tf.GradSaveFunc, w: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const a = x as tf.Tensor2D
    const b = w as tf.Tensor2D
    ;(save as tf.GradSaveFunc)([a, b])
    return {
      value: tf.matMul(a, b) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, saved: Array<tf.Tensor>) => {
        const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D]
        return [tf.matMul(dy, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy)]
      }
    }
  }
) as unknown as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D

/** y = x @ w + b for x: [N, in]. */
export const linear = (x: tf.Tensor2D, layer: Linear): tf.Tensor2D => {
  const y = matMul2d(x, layer.w)
  return layer.b === undefined ? y : tf.add(y, layer.b)
}
