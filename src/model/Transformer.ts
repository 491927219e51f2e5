/**
 * The decoder-only transformer of Hugging Face's LlamaForCausalLM and Qwen2ForCausalLM:
 * token embedding → N × (RMSNorm → grouped-query attention with rotary embeddings → residual
 * → RMSNorm → SwiGLU MLP → residual) → RMSNorm → LM head.
 *
 * Hidden states stay 2-D ([B*T, D]) between blocks so every weight product is a plain 2-D
 * matMul; only attention reshapes into heads. Shapes: B batch, T new tokens, P cached
 * positions, D hidden, H query heads, KV key/value heads, R = H / KV, hd head dim, V vocab.
 */
import * as tf from "@tensorflow/tfjs"
import { linear, matMul2d } from "./Linear.ts"
import type { LayerShape, ModelConfig } from "./ModelConfig.ts"
import type { LayerParams, Params } from "./Params.ts"

/** Keys and values of the positions already seen, per layer: [B, KV, P, hd] (after RoPE). */
export interface KvCache {
  readonly length: number
  readonly layers: ReadonlyArray<{ readonly k: tf.Tensor4D; readonly v: tf.Tensor4D }>
}

export const rmsNorm = (x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D =>
  tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true)
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight)
  })

/**
 * cos and sin tables [T, hd] for positions start..start+T-1, computed the way transformers
 * does it in float32: inv_freq = 1 / θ^(2i/hd), angle = position · inv_freq, the half-size
 * table repeated twice (rotate-half convention).
 */
export const ropeTables = (
  headDim: number,
  theta: number,
  start: number,
  length: number
): { cos: tf.Tensor2D; sin: tf.Tensor2D } => {
  const half = headDim / 2
  const invFreq = Array.from({ length: half }, (_, i) =>
    Math.fround(1 / Math.fround(Math.pow(theta, Math.fround(Math.fround(2 * i) / headDim)))))
  const cos = new Float32Array(length * headDim)
  const sin = new Float32Array(length * headDim)
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround((start + t) * invFreq[i])
      const c = Math.cos(angle)
      const s = Math.sin(angle)
      cos[t * headDim + i] = c
      cos[t * headDim + i + half] = c
      sin[t * headDim + i] = s
      sin[t * headDim + i + half] = s
    }
  }
  return { cos: tf.tensor2d(cos, [length, headDim]), sin: tf.tensor2d(sin, [length, headDim]) }
}

/** Rotary embedding of x: [B, T, heads, hd] with tables [T, hd]. */
export const applyRope = (x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D =>
  tf.tidy(() => {
    const [B, T, heads, hd] = x.shape
    const half = hd / 2
    const x1 = tf.slice(x, [0, 0, 0, 0], [B, T, heads, half])
    const x2 = tf.slice(x, [0, 0, 0, half], [B, T, heads, half])
    const rotated = tf.concat([tf.neg(x2), x1], 3)
    const c = tf.reshape(cos, [1, T, 1, hd])
    const s = tf.reshape(sin, [1, T, 1, hd])
    return tf.add(tf.mul(x, c), tf.mul(rotated, s))
  })

/**
 * Additive causal mask [R*T, P+T] for query rows ordered (r, t): query t (absolute position
 * P+t) sees keys 0..P+t.
 */
const causalMask = (repeats: number, T: number, P: number): tf.Tensor2D => {
  const keys = P + T
  const mask = new Float32Array(repeats * T * keys)
  for (let r = 0; r < repeats; r++) {
    for (let t = 0; t < T; t++) {
      const row = (r * T + t) * keys
      for (let j = P + t + 1; j < keys; j++) mask[row + j] = -1e9
    }
  }
  return tf.tensor2d(mask, [repeats * T, keys])
}

interface AttentionResult {
  readonly out: tf.Tensor2D // [B*T, D]
  readonly k: tf.Tensor4D // [B, KV, P+T, hd]
  readonly v: tf.Tensor4D
}

const attention = (
  config: ModelConfig,
  shape: LayerShape,
  p: LayerParams,
  x: tf.Tensor2D, // [B*T, D] normalised
  B: number,
  T: number,
  rope: { cos: tf.Tensor2D; sin: tf.Tensor2D },
  past: { k: tf.Tensor4D; v: tf.Tensor4D } | undefined,
  P: number
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
  const masked = T > 1 ? tf.add(scores, causalMask(R, T, P)) : scores
  const probs = tf.softmax(masked)
  const context = tf.matMul(probs, tf.reshape(v, [B * KV, S, hd])) // [B*KV, R*T, hd]
  const merged = tf.reshape(tf.transpose(tf.reshape(context, [B, KV, R, T, hd]), [0, 3, 1, 2, 4]), [B * T, H * hd])
  return { out: linear(merged, p.o), k, v }
}

/** SwiGLU: down(silu(gate(x)) · up(x)). */
const mlp = (p: LayerParams, x: tf.Tensor2D): tf.Tensor2D => {
  const gate = linear(x, p.gate)
  return linear(tf.mul(tf.mul(gate, tf.sigmoid(gate)), linear(x, p.up)), p.down)
}

export interface ForwardResult {
  readonly logits: tf.Tensor3D // [B, T, V]
  /** Present when the forward was given a cache: the cache extended by these T positions. */
  readonly cache?: KvCache
}

/**
 * Logits for token ids [B, T] at positions cache.length.., extending the cache when given.
 * Call inside tf.tidy (or dispose the result); the input cache is not disposed.
 */
export const forward = (
  config: ModelConfig,
  params: Params,
  ids: tf.Tensor2D,
  cache?: KvCache
): ForwardResult => {
  const [B, T] = ids.shape
  const P = cache?.length ?? 0
  const rope = ropeTables(config.headDim, config.ropeTheta, P, T)
  let h = tf.gather(params.embed, tf.reshape(ids, [B * T])) as tf.Tensor2D // [B*T, D]
  const layers: Array<{ k: tf.Tensor4D; v: tf.Tensor4D }> = []
  config.layers.forEach((shape, i) => {
    const p = params.layers[i]
    const a = attention(config, shape, p, rmsNorm(h, p.inputNorm, config.rmsNormEps), B, T, rope, cache?.layers[i], P)
    h = tf.add(h, a.out)
    h = tf.add(h, mlp(p, rmsNorm(h, p.postNorm, config.rmsNormEps)))
    layers.push({ k: a.k, v: a.v })
  })
  const final = rmsNorm(h, params.norm, config.rmsNormEps)
  const logits2d = params.lmHead !== undefined
    ? linear(final, params.lmHead)
    : matMul2d(final, tf.transpose(params.embed))
  const logits = tf.reshape(logits2d, [B, T, config.vocabSize]) as tf.Tensor3D
  return cache === undefined ? { logits } : { logits, cache: { length: P + T, layers } }
}

/**
 * Mean next-token cross-entropy over ids [B, T]: position t predicts token t+1. `weights`
 * [B, T-1] (1 counts, 0 ignores) masks prompt tokens for SFT; by default every target counts.
 */
export const nextTokenLoss = (
  config: ModelConfig,
  params: Params,
  ids: tf.Tensor2D,
  weights?: tf.Tensor2D
): tf.Scalar =>
  tf.tidy(() => {
    const [B, T] = ids.shape
    const inputs = tf.slice(ids, [0, 0], [B, T - 1])
    const targets = tf.reshape(tf.slice(ids, [0, 1], [B, T - 1]), [B * (T - 1)])
    const logits = tf.reshape(forward(config, params, inputs).logits, [B * (T - 1), config.vocabSize])
    const logProbs = tf.logSoftmax(logits)
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(tf.cast(targets, "int32"), config.vocabSize)), -1)
    const w = weights === undefined ? tf.onesLike(picked) : tf.reshape(tf.cast(weights, "float32"), [B * (T - 1)])
    return tf.div(tf.neg(tf.sum(tf.mul(picked, w))), tf.maximum(tf.sum(w), 1)) as tf.Scalar
  })
