/**
 * Rotary position embeddings (RoPE) in the rotate-half convention of transformers' Llama and
 * Qwen2: the first and second halves of each head's dimensions form the rotated pairs.
 */
import * as tf from "@tensorflow/tfjs"
import type { Llama3RopeScaling } from "./ModelConfig.ts"

/**
 * inv_freq = 1 / θ^(2i/hd) in float32 as transformers computes it, then Llama 3's scaling when
 * the config has one: low frequencies (long wavelengths) divided by the factor, high ones kept,
 * the band between blended linearly in the ratio of context length to wavelength.
 */
export const inverseFrequencies = (headDim: number, theta: number, scaling?: Llama3RopeScaling): Array<number> => {
  const plain = Array.from({ length: headDim / 2 }, (_, i) =>
    Math.fround(1 / Math.fround(Math.pow(theta, Math.fround(Math.fround(2 * i) / headDim)))))
  if (scaling === undefined) return plain
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: context } = scaling
  const lowFreqWavelength = context / lowFreqFactor
  const highFreqWavelength = context / highFreqFactor
  return plain.map((f) => {
    const wavelength = (2 * Math.PI) / f
    if (wavelength < highFreqWavelength) return f
    if (wavelength > lowFreqWavelength) return Math.fround(f / factor)
    const smooth = (context / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
    return Math.fround((1 - smooth) * (f / factor) + smooth * f)
  })
}

/**
 * cos and sin tables [N, hd] for the given positions, computed the way transformers does it
 * in float32: inv_freq = 1 / θ^(2i/hd), angle = position · inv_freq, the half-size table
 * repeated twice (rotate-half convention).
 */
export const ropeTables = (
  headDim: number,
  theta: number,
  positions: ReadonlyArray<number>,
  scaling?: Llama3RopeScaling
): { cos: tf.Tensor2D; sin: tf.Tensor2D } => {
  const half = headDim / 2
  const invFreq = inverseFrequencies(headDim, theta, scaling)
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

