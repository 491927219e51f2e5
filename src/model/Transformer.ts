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

/**
 * Keys and values of the positions already seen, per layer: [B, KV, P, hd] (after RoPE), and
 * the number of left-padding slots of each sequence (batched prompts of unequal length).
 */
export interface KvCache {
  readonly length: number
  readonly padding: ReadonlyArray<number>
  readonly layers: ReadonlyArray<{ readonly k: tf.Tensor4D; readonly v: tf.Tensor4D }>
}

export const rmsNorm = (x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D =>
  tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true)
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight)
  })

/**
 * cos and sin tables [N, hd] for the given positions, computed the way transformers does it
 * in float32: inv_freq = 1 / θ^(2i/hd), angle = position · inv_freq, the half-size table
 * repeated twice (rotate-half convention).
 */
export const ropeTables = (
  headDim: number,
  theta: number,
  positions: ReadonlyArray<number>
): { cos: tf.Tensor2D; sin: tf.Tensor2D } => {
  const half = headDim / 2
  const invFreq = Array.from({ length: half }, (_, i) =>
    Math.fround(1 / Math.fround(Math.pow(theta, Math.fround(Math.fround(2 * i) / headDim)))))
  const n = positions.length
  const cos = new Float32Array(n * headDim)
  const sin = new Float32Array(n * headDim)
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(positions[t] * invFreq[i])
      const c = Math.cos(angle)
      const s = Math.sin(angle)
      cos[t * headDim + i] = c
      cos[t * headDim + i + half] = c
      sin[t * headDim + i] = s
      sin[t * headDim + i + half] = s
    }
  }
  return { cos: tf.tensor2d(cos, [n, headDim]), sin: tf.tensor2d(sin, [n, headDim]) }
}

/**
 * Rotary embedding of x: [B, T, heads, hd] with tables [G*T, hd], G = 1 (positions shared by
 * the batch) or B (one row of positions per sequence).
 */
export const applyRope = (x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D =>
  tf.tidy(() => {
    const [B, T, heads, hd] = x.shape
    const half = hd / 2
    const x1 = tf.slice(x, [0, 0, 0, 0], [B, T, heads, half])
    const x2 = tf.slice(x, [0, 0, 0, half], [B, T, heads, half])
    const rotated = tf.concat([tf.neg(x2), x1], 3)
    const groups = cos.shape[0] / T
    const c = tf.reshape(cos, [groups, T, 1, hd])
    const s = tf.reshape(sin, [groups, T, 1, hd])
    return tf.add(tf.mul(x, c), tf.mul(rotated, s))
  })

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

const attention = (
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

export interface ForwardOptions {
  /** Positions seen so far; the new tokens follow them and the result carries the extended cache. */
  readonly cache?: KvCache
  /**
   * Left-padding slots per sequence (only without a cache; a cache carries its own). Padding
   * slots are never attended to and positions count from each sequence's first real token.
   */
  readonly padding?: ReadonlyArray<number>
}

/** An empty cache for a batch, to start incremental decoding. */
export const emptyCache = (padding: ReadonlyArray<number>): KvCache => ({ length: 0, padding, layers: [] })

/**
 * Logits for token ids [B, T] at slots cache.length.., extending the cache when given.
 * Call inside tf.tidy (or dispose the result); the input cache is not disposed.
 */
export const forward = (
  config: ModelConfig,
  params: Params,
  ids: tf.Tensor2D,
  options: ForwardOptions = {}
): ForwardResult => {
  const [B, T] = ids.shape
  const cache = options.cache
  const P = cache?.length ?? 0
  const padding = cache?.padding ?? options.padding ?? new Array<number>(B).fill(0)
  const padded = padding.some((p) => p > 0)
  const positions = (padded ? padding : [0]).flatMap((pad) =>
    Array.from({ length: T }, (_, t) => Math.max(P + t - pad, 0)))
  const rope = ropeTables(config.headDim, config.ropeTheta, positions)
  let h = tf.gather(params.embed, tf.reshape(ids, [B * T])) as tf.Tensor2D // [B*T, D]
  const layers: Array<{ k: tf.Tensor4D; v: tf.Tensor4D }> = []
  config.layers.forEach((shape, i) => {
    const p = params.layers[i]
    const normed = rmsNorm(h, p.inputNorm, config.rmsNormEps)
    const past = cache !== undefined && P > 0 ? cache.layers[i] : undefined
    const a = attention(config, shape, p, normed, B, T, rope, past, P, padding)
    h = tf.add(h, a.out)
    h = tf.add(h, mlp(p, rmsNorm(h, p.postNorm, config.rmsNormEps)))
    layers.push({ k: a.k, v: a.v })
  })
  const final = rmsNorm(h, params.norm, config.rmsNormEps)
  const logits2d = params.lmHead !== undefined
    ? linear(final, params.lmHead)
    : matMul2d(final, tf.transpose(params.embed) as tf.Tensor2D)
  const logits = tf.reshape(logits2d, [B, T, config.vocabSize]) as tf.Tensor3D
  return cache === undefined ? { logits } : { logits, cache: { length: P + T, padding, layers } }
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
