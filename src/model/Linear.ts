/**
 * `x @ w` for 2-D tensors: the weight products of the transformer.
 *
 * Kept 2-D with the weight untransposed ([in, out]) in the forward direction; the backward
 * products use tfjs' own gradient of matMul (dx = dy·wᵀ and dw = xᵀ·dy through the transpose
 * flags). On the wasm backend every direction runs on the generated BatchMatMul kernel
 * (compute/wasm/Gemm.ts), which handles both flags at full speed. The earlier custom gradient
 * with explicitly transposed operands existed because wasm's built-in kernel left XNNPACK's
 * path on any transpose flag (1-2 GFLOP/s); with the generated kernel it only added two
 * transposes and two saved-tensor copies per product (measured ~5% slower per training step).
 */
import * as tf from "@tensorflow/tfjs"
import type { Linear } from "./Params.ts"

export const matMul2d = (x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D => tf.matMul(x, w)

/** y = x @ w + b for x: [N, in], plus scale · (x @ a) @ b when the layer carries a low-rank adapter. */
export const linear = (x: tf.Tensor2D, layer: Linear): tf.Tensor2D => {
  let y = matMul2d(x, layer.w)
  if (layer.lora !== undefined) y = tf.add(y, tf.mul(matMul2d(matMul2d(x, layer.lora.a), layer.lora.b), layer.lora.scale))
  return layer.b === undefined ? y : tf.add(y, layer.b)
}
