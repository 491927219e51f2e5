/**
 * Attention formulations side by side on wasm: one attention block of the reference model
 * (B 16, T 64, D 128, 4 heads of 32; projections included), forward + backward (gradients of
 * the input and the four weights), each with tfjs-wasm's own BatchMatMul and with the
 * generated one, alternating in one process; medians in ms.
 */
import * as tf from "@tensorflow/tfjs"
import { originalBatchMatMul } from "../src/compute/wasm/Gemm.ts"
import { attention } from "../src/model/Attention.ts"
import { linear } from "../src/model/Linear.ts"
import type { LayerShape, ModelConfig } from "../src/model/ModelConfig.ts"
import { initParams, type LayerParams } from "../src/model/Params.ts"
import { applyRope, ropeTables } from "../src/model/Rope.ts"
import { type Benchmark, intOption, machineInfo, median, type Options, progress, referenceConfig, round, useBackend } from "./common.ts"

type AttentionFn = (
  config: ModelConfig,
  shape: LayerShape,
  p: LayerParams,
  x: tf.Tensor2D,
  B: number,
  T: number,
  tables: { cos: tf.Tensor2D; sin: tf.Tensor2D }
) => tf.Tensor2D

const causalMask = (T: number): tf.Tensor2D => {
  const mask = new Float32Array(T * T)
  for (let t = 0; t < T; t++) for (let j = t + 1; j < T; j++) mask[t * T + j] = -1e9
  return tf.tensor2d(mask, [T, T])
}

/** Before: RoPE by slices/concat (Rope.ts), the scale applied to the scores, grouped batched products. */
const previous: AttentionFn = (config, shape, p, x, B, T, tables) => {
  const hd = config.headDim
  const H = shape.numHeads
  const KV = shape.numKeyValueHeads
  const R = H / KV
  const q = applyRope(tf.reshape(linear(x, p.q), [B, T, H, hd]), tables.cos, tables.sin)
  const k = tf.transpose(applyRope(tf.reshape(linear(x, p.k), [B, T, KV, hd]), tables.cos, tables.sin), [0, 2, 1, 3])
  const v = tf.transpose(tf.reshape(linear(x, p.v), [B, T, KV, hd]), [0, 2, 1, 3])
  const qGrouped = tf.reshape(tf.transpose(tf.reshape(q, [B, T, KV, R, hd]), [0, 2, 3, 1, 4]), [B * KV, R * T, hd])
  const scores = tf.mul(tf.matMul(qGrouped, tf.reshape(k, [B * KV, T, hd]), false, true), 1 / Math.sqrt(hd))
  const mask = tf.reshape(tf.tile(causalMask(T), [R, 1]), [1, 1, R * T, T])
  const probs = tf.softmax(tf.reshape(tf.add(tf.reshape(scores, [B, KV, R * T, T]), mask), [B * KV, R * T, T]))
  const context = tf.matMul(probs, tf.reshape(v, [B * KV, T, hd]))
  const merged = tf.reshape(tf.transpose(tf.reshape(context, [B, KV, R, T, hd]), [0, 3, 1, 2, 4]), [B * T, H * hd]) as tf.Tensor2D
  return linear(merged, p.o)
}

/** One 2-D product per (sequence, key/value group): the shape wasm's XNNPACK path accepts. */
const perGroup: AttentionFn = (config, shape, p, x, B, T, tables) => {
  const hd = config.headDim
  const H = shape.numHeads
  const KV = shape.numKeyValueHeads
  const R = H / KV
  const q = applyRope(tf.reshape(linear(x, p.q), [B, T, H, hd]), tables.cos, tables.sin)
  const k = tf.transpose(applyRope(tf.reshape(linear(x, p.k), [B, T, KV, hd]), tables.cos, tables.sin), [0, 2, 3, 1]) // [B, KV, hd, T]
  const v = tf.transpose(tf.reshape(linear(x, p.v), [B, T, KV, hd]), [0, 2, 1, 3])
  const qGrouped = tf.reshape(tf.transpose(tf.reshape(q, [B, T, KV, R, hd]), [0, 2, 3, 1, 4]), [B * KV, R * T, hd])
  const qs = tf.unstack(qGrouped)
  const kts = tf.unstack(tf.reshape(k, [B * KV, hd, T]))
  const vs = tf.unstack(tf.reshape(v, [B * KV, T, hd]))
  const mask = tf.tile(causalMask(T), [R, 1])
  const scale = 1 / Math.sqrt(hd)
  const contexts = qs.map((qi, i) =>
    tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(qi as tf.Tensor2D, kts[i] as tf.Tensor2D), scale), mask)), vs[i] as tf.Tensor2D))
  const context = tf.stack(contexts)
  const merged = tf.reshape(tf.transpose(tf.reshape(context, [B, KV, R, T, hd]), [0, 3, 1, 2, 4]), [B * T, H * hd]) as tf.Tensor2D
  return linear(merged, p.o)
}

/** Now (src/model/Attention.ts): RoPE's rotate-half as a [hd, hd] product, the scale on the query tables. */
const current: AttentionFn = (config, shape, p, x, B, T, tables) =>
  attention(config, shape, p, x, B, T, tables, undefined, 0, new Array<number>(B).fill(0)).out

const candidates: Record<string, AttentionFn> = {
  "previous (slice/concat RoPE, scaled scores)": previous,
  "per-group 2-D products": perGroup,
  "current (rotate-half matrix, scale on query tables)": current
}

export const attentionBench: Benchmark = {
  summary: "attention formulations × matMul kernels on wasm (one block, forward + backward)",
  usage: "attention [--repeats 7] [--batch 16] [--seq 64]",
  options: ["repeats", "batch", "seq"],
  run: async (options: Options) => {
    const repeats = intOption(options, "repeats", 7)
    const B = intOption(options, "batch", 16)
    const T = intOption(options, "seq", 64)
    const description = await useBackend("wasm")
    const config = referenceConfig
    const shape = config.layers[0]
    const params = initParams(config, 1)
    const p = params.layers[0]
    const x = tf.randomNormal([B * T, config.hiddenSize], 0, 1, "float32", 1) as tf.Tensor2D
    const dy = tf.randomNormal([B * T, config.hiddenSize], 0, 1, "float32", 2)
    const positions = Array.from({ length: T }, (_, t) => t)
    const tables = ropeTables(config.headDim, config.ropeTheta, positions)
    const generated = tf.getKernel("BatchMatMul", "wasm")!
    const kernels: Record<string, tf.KernelConfig> = { "tfjs-wasm": originalBatchMatMul(), generated }
    const use = (kernel: tf.KernelConfig) => {
      tf.unregisterKernel("BatchMatMul", "wasm")
      tf.registerKernel(kernel)
    }
    const step = (fn: AttentionFn) => {
      const inputs = [x, p.q.w, p.k.w, p.v.w, p.o.w]
      const grads = tf.grads((...t: Array<tf.Tensor>) => {
        const layer: LayerParams = { ...p, q: { w: t[1] as tf.Tensor2D }, k: { w: t[2] as tf.Tensor2D }, v: { w: t[3] as tf.Tensor2D }, o: { w: t[4] as tf.Tensor2D } }
        return tf.sum(tf.mul(fn(config, shape, layer, t[0] as tf.Tensor2D, B, T, tables), dy))
      })(inputs)
      tf.dispose(grads)
    }
    const times = new Map<string, Array<number>>()
    try {
      for (let r = 0; r < repeats + 1; r++) {
        for (const [kernelName, kernel] of Object.entries(kernels)) {
          use(kernel)
          for (const [name, fn] of Object.entries(candidates)) {
            const started = performance.now()
            step(fn)
            const elapsed = performance.now() - started
            if (r === 0) continue // warm-up (and kernel compilation)
            const key = `${name} | ${kernelName}`
            times.set(key, [...(times.get(key) ?? []), elapsed])
          }
        }
        progress(`  attention: round ${r + 1}/${repeats + 1}`)
      }
    } finally {
      use(generated)
    }
    const results = [...times.entries()].map(([key, ms]) => {
      const [formulation, kernel] = key.split(" | ")
      return { formulation, kernel, msForwardBackward: round(median(ms), 2), min: round(Math.min(...ms), 2) }
    })
    tf.dispose([x, dy, tables.cos, tables.sin])
    return { benchmark: "attention", machine: machineInfo(), backend: description, batch: B, seqLen: T, repeats, results }
  }
}
