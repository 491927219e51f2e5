/**
 * Grouped-query self-attention with rotary embeddings, causal and left-padding masks, and an
 * optional cache of past keys and values. Query heads of one key/value group are stacked so
 * that each group is one batched product, without materialising repeated keys.
 *
 * Formulation (measured side by side: `npm run bench -- attention`, one block of the reference
 * model, B 16 × T 64, D 128, 4 heads of 32, projections included, forward + backward on wasm,
 * medians of 25 alternating rounds on a 2-core Xeon):
 *
 *   formulation                                     tfjs-wasm matMul   generated matMul
 *   previous: RoPE by slice/neg/concat, scale on         217 ms              32 ms
 *     the [B·KV, R·T, S] scores
 *   one 2-D product per (sequence, group)                379 ms             154 ms
 *   current: RoPE's rotate-half as a [hd, hd]            249 ms              26 ms
 *     product, scale folded into the query's tables
 *
 * The batched products themselves were the bottleneck (1-2 GFLOP/s in tfjs-wasm's scalar
 * loop, for every batched or transposed product); they now run on the generated kernel
 * (compute/wasm/Gemm.ts, 25-40 GFLOP/s), which is the bulk of the gain. Per-group 2-D products
 * drown in per-op overhead (64 products, slices and a stack per layer). Of what remained,
 * RoPE's slices, concat and their gradients (pad, split) cost more than a 32×32 product, and
 * the scale costs a pass over the scores where the query tables are [T, hd] (with tfjs-wasm's
 * own kernel the rotation's transposed backward product is slow, hence no gain there). When
 * decoding one token, transposes that only move the size-1 position axis become reshapes.
 */
import * as tf from "@tensorflow/tfjs"
import { linear } from "./Linear.ts"
import type { LayerShape, ModelConfig } from "./ModelConfig.ts"
import type { LayerParams } from "./Params.ts"

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

/**
 * The rotate-half map of RoPE as a constant matrix [hd, hd]: x @ rot = concat(-x2, x1). One
 * small product (and one in the backward) instead of slice, slice, neg, concat and their
 * gradients (pad, pad, neg, split).
 */
const rotateHalfMatrix = (hd: number): tf.Tensor2D => {
  const half = hd / 2
  const m = new Float32Array(hd * hd)
  for (let i = 0; i < half; i++) {
    m[(i + half) * hd + i] = -1 // out[i] = -x[i + half]
    m[i * hd + i + half] = 1 // out[i + half] = x[i]
  }
  return tf.tensor2d(m, [hd, hd])
}

interface RopeConstants {
  readonly rot: tf.Tensor2D
  /** The query's tables, pre-multiplied by the softmax scale 1/√hd. */
  readonly cosQ: tf.Tensor2D
  readonly sinQ: tf.Tensor2D
}

/**
 * Per forward pass, not per layer: keyed by the forward's rotary table (every layer receives
 * the same one), rebuilt if the tensors it holds were disposed meanwhile.
 */
const ropeConstants = new WeakMap<tf.Tensor, RopeConstants>()

const constantsFor = (tables: { cos: tf.Tensor2D; sin: tf.Tensor2D }, hd: number): RopeConstants => {
  const cached = ropeConstants.get(tables.cos)
  if (cached !== undefined && !cached.rot.isDisposed && !cached.cosQ.isDisposed && !cached.sinQ.isDisposed) return cached
  const scale = 1 / Math.sqrt(hd)
  const made: RopeConstants = {
    rot: rotateHalfMatrix(hd),
    cosQ: tf.mul(tables.cos, scale) as tf.Tensor2D,
    sinQ: tf.mul(tables.sin, scale) as tf.Tensor2D
  }
  ropeConstants.set(tables.cos, made)
  return made
}

/**
 * tf.transpose, or a free reshape when the permutation only moves axes of size 1 (the
 * position axis while decoding one token): the elements stay in the same order.
 */
const permute = <R extends tf.Rank = tf.Rank>(x: tf.Tensor, perm: Array<number>): tf.Tensor<R> => {
  const kept = perm.filter((axis) => x.shape[axis] !== 1)
  const inOrder = kept.every((axis, i) => i === 0 || kept[i - 1] < axis)
  return (inOrder ? tf.reshape(x, perm.map((axis) => x.shape[axis])) : tf.transpose(x, perm)) as unknown as tf.Tensor<R>
}

/**
 * Rotary embedding of x [B*T, heads*hd] with tables [G*T, hd] (G = 1 or B), as [B, T, heads, hd]:
 * x·cos + rotate_half(x)·sin, in the rotate-half convention of Rope.ts.
 */
const rope = (
  x: tf.Tensor2D,
  B: number,
  T: number,
  heads: number,
  hd: number,
  rot: tf.Tensor2D,
  cos: tf.Tensor2D,
  sin: tf.Tensor2D
): tf.Tensor4D => {
  const rotated = tf.reshape(tf.matMul(tf.reshape(x, [B * T * heads, hd]), rot), [B, T, heads, hd])
  const groups = cos.shape[0] / T
  const c = tf.reshape(cos, [groups, T, 1, hd])
  const s = tf.reshape(sin, [groups, T, 1, hd])
  return tf.add(tf.mul(tf.reshape(x, [B, T, heads, hd]), c), tf.mul(rotated, s))
}

export const attention = (
  config: ModelConfig,
  shape: LayerShape,
  p: LayerParams,
  x: tf.Tensor2D, // [B*T, D] normalised
  B: number,
  T: number,
  tables: { cos: tf.Tensor2D; sin: tf.Tensor2D },
  past: { k: tf.Tensor4D; v: tf.Tensor4D } | undefined,
  P: number,
  padding: ReadonlyArray<number>,
  /** Sees the merged heads before o_proj [B*T, H*hd] (pruning scorers; see ForwardOptions.observe). */
  observe?: (name: "attn.context", merged: tf.Tensor2D) => void
): AttentionResult => {
  const hd = config.headDim
  const H = shape.numHeads
  const KV = shape.numKeyValueHeads
  const R = H / KV
  // The softmax scale 1/√hd rides on the query's rotary tables (made once per forward)
  // instead of a pass over the [B*KV, R*T, S] scores and its gradient.
  const { rot, cosQ, sinQ } = constantsFor(tables, hd)
  const q = rope(linear(x, p.q), B, T, H, hd, rot, cosQ, sinQ)
  const kNew = rope(linear(x, p.k), B, T, KV, hd, rot, tables.cos, tables.sin)
  const vNew = tf.reshape(linear(x, p.v), [B, T, KV, hd])
  // [B, KV, T, hd]; appended to the cache along the position axis.
  let k = permute<tf.Rank.R4>(kNew, [0, 2, 1, 3]) as tf.Tensor4D
  let v = permute<tf.Rank.R4>(vNew, [0, 2, 1, 3]) as tf.Tensor4D
  if (past !== undefined) {
    k = tf.concat([past.k, k], 2)
    v = tf.concat([past.v, v], 2)
  }
  const S = P + T
  // Queries of one key/value group side by side: [B*KV, R*T, hd], rows ordered (r, t).
  const qGrouped = tf.reshape(permute(tf.reshape(q, [B, T, KV, R, hd]), [0, 2, 3, 1, 4]), [B * KV, R * T, hd])
  const scores = tf.matMul(qGrouped, tf.reshape(k, [B * KV, S, hd]), false, true) // [B*KV, R*T, S], scaled
  const needsMask = T > 1 || padding.some((p) => p > 0)
  const probs = tf.softmax(
    needsMask
      ? tf.reshape(tf.add(tf.reshape(scores, [B, KV, R * T, S]), tf.expandDims(attentionMask(R, T, P, padding), 1)), [B * KV, R * T, S])
      : scores
  )
  const context = tf.matMul(probs, tf.reshape(v, [B * KV, S, hd])) // [B*KV, R*T, hd]
  const merged = tf.reshape(permute(tf.reshape(context, [B, KV, R, T, hd]), [0, 3, 1, 2, 4]), [B * T, H * hd]) as tf.Tensor2D
  observe?.("attn.context", merged)
  return { out: linear(merged, p.o), k, v }
}
