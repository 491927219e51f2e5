/**
 * Grouped-query self-attention with rotary embeddings, causal and left-padding masks, and an
 * optional cache of past keys and values. Query heads of one key/value group are stacked so
 * that each group is one batched product, without materialising repeated keys.
 */
import * as tf from "@tensorflow/tfjs"
import { linear } from "./Linear.ts"
import type { LayerShape, ModelConfig } from "./ModelConfig.ts"
import type { LayerParams } from "./Params.ts"
import { applyRope } from "./Rope.ts"

/**
 * Additive attention mask [G, R*T, P+T] for query rows ordered (r, t): query t (slot P+t)
 * sees key slots pad..P+t, where pad is its sequence's left padding. G is 1 without padding.
 */
const attentionMask = (repeats: number, T: number, P: number, padding: ReadonlyArray<number>): tf.Tensor3D => {
  const keys = P + T
  const pads = padding.some((p) => p > 0) ? padding : [0]
  const mask = new Float32Array(pads.length * repeats * T * keys)
  pads.forEach((pad, b) => {
    for (let r = 0; r < repeats; r++) {
      for (let t = 0; t < T; t++) {
        const row = ((b * repeats + r) * T + t) * keys
        for (let j = 0; j < keys; j++) if (j < pad || j > P + t) mask[row + j] = -1e9
      }
    }
  })
  return tf.tensor3d(mask, [pads.length, repeats * T, keys])
}

interface AttentionResult {
  readonly out: tf.Tensor2D // [B*T, D]
  readonly k: tf.Tensor4D // [B, KV, P+T, hd]
  readonly v: tf.Tensor4D
}

export const attention = (
  config: ModelConfig,
  shape: LayerShape,
  p: LayerParams,
  x: tf.Tensor2D, // [B*T, D] normalised
  B: number,
  T: number,
  rope: { cos: tf.Tensor2D; sin: tf.Tensor2D },
  past: { k: tf.Tensor4D; v: tf.Tensor4D } | undefined,
  P: number,
  padding: ReadonlyArray<number>
): AttentionResult => {
  const hd = config.headDim
  const H = shape.numHeads
  const KV = shape.numKeyValueHeads
  const R = H / KV
  const q = applyRope(tf.reshape(linear(x, p.q), [B, T, H, hd]), rope.cos, rope.sin)
  const kNew = applyRope(tf.reshape(linear(x, p.k), [B, T, KV, hd]), rope.cos, rope.sin)
  const vNew = tf.reshape(linear(x, p.v), [B, T, KV, hd])
  // [B, KV, T, hd]; appended to the cache along the position axis.
  let k = tf.transpose(kNew, [0, 2, 1, 3]) as tf.Tensor4D
  let v = tf.transpose(vNew, [0, 2, 1, 3]) as tf.Tensor4D
  if (past !== undefined) {
    k = tf.concat([past.k, k], 2)
    v = tf.concat([past.v, v], 2)
  }
  const S = P + T
  // Queries of one key/value group side by side: [B*KV, R*T, hd], rows ordered (r, t).
  const qGrouped = tf.reshape(tf.transpose(tf.reshape(q, [B, T, KV, R, hd]), [0, 2, 3, 1, 4]), [B * KV, R * T, hd])
  const scores = tf.mul(tf.matMul(qGrouped, tf.reshape(k, [B * KV, S, hd]), false, true), 1 / Math.sqrt(hd))
  const needsMask = T > 1 || padding.some((p) => p > 0)
  const probs = tf.softmax(
    needsMask
      ? tf.reshape(tf.add(tf.reshape(scores, [B, KV, R * T, S]), tf.expandDims(attentionMask(R, T, P, padding), 1)), [B * KV, R * T, S])
      : scores
  )
  const context = tf.matMul(probs, tf.reshape(v, [B * KV, S, hd])) // [B*KV, R*T, hd]
  const merged = tf.reshape(tf.transpose(tf.reshape(context, [B, KV, R, T, hd]), [0, 3, 1, 2, 4]), [B * T, H * hd]) as tf.Tensor2D
  return { out: linear(merged, p.o), k, v }
}

