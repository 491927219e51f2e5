/**
 * The attention formulation of src/model/Attention.ts against the previous one (kept below
 * verbatim as the reference: RoPE by slices and concat, the softmax scale on the scores), on
 * cpu, within 1e-5 for outputs (absolute) and for the gradients of the input and of every
 * weight (relative to the largest entry); and the same formulation on wasm (the generated
 * BatchMatMul kernel) and on webgpu against cpu, within 1e-5 relative. Cases: multi-head,
 * grouped-query (R = 2 and R = 4), a KV cache, and left padding.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { attention } from "../../src/model/Attention.ts"
import { linear } from "../../src/model/Linear.ts"
import type { LayerShape, ModelConfig } from "../../src/model/ModelConfig.ts"
import { initParams, type LayerParams } from "../../src/model/Params.ts"
import { applyRope, ropeTables } from "../../src/model/Rope.ts"
import { maxAbsDiff, onBackends, readAll, relativeDiff, tinyConfig, useBackend } from "../helpers/backend.ts"

// ---- the formulation before this change (git 4c03cc5), the reference ----

const referenceMask = (repeats: number, T: number, P: number, padding: ReadonlyArray<number>): tf.Tensor3D => {
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

const referenceAttention = (
  config: ModelConfig,
  shape: LayerShape,
  p: LayerParams,
  x: tf.Tensor2D,
  B: number,
  T: number,
  rope: { cos: tf.Tensor2D; sin: tf.Tensor2D },
  past: { k: tf.Tensor4D; v: tf.Tensor4D } | undefined,
  P: number,
  padding: ReadonlyArray<number>
) => {
  const hd = config.headDim
  const H = shape.numHeads
  const KV = shape.numKeyValueHeads
  const R = H / KV
  const q = applyRope(tf.reshape(linear(x, p.q), [B, T, H, hd]), rope.cos, rope.sin)
  const kNew = applyRope(tf.reshape(linear(x, p.k), [B, T, KV, hd]), rope.cos, rope.sin)
  const vNew = tf.reshape(linear(x, p.v), [B, T, KV, hd])
  let k = tf.transpose(kNew, [0, 2, 1, 3]) as tf.Tensor4D
  let v = tf.transpose(vNew, [0, 2, 1, 3]) as tf.Tensor4D
  if (past !== undefined) {
    k = tf.concat([past.k, k], 2)
    v = tf.concat([past.v, v], 2)
  }
  const S = P + T
  const qGrouped = tf.reshape(tf.transpose(tf.reshape(q, [B, T, KV, R, hd]), [0, 2, 3, 1, 4]), [B * KV, R * T, hd])
  const scores = tf.mul(tf.matMul(qGrouped, tf.reshape(k, [B * KV, S, hd]), false, true), 1 / Math.sqrt(hd))
  const needsMask = T > 1 || padding.some((p) => p > 0)
  const probs = tf.softmax(
    needsMask
      ? tf.reshape(tf.add(tf.reshape(scores, [B, KV, R * T, S]), tf.expandDims(referenceMask(R, T, P, padding), 1)), [B * KV, R * T, S])
      : scores
  )
  const context = tf.matMul(probs, tf.reshape(v, [B * KV, S, hd]))
  const merged = tf.reshape(tf.transpose(tf.reshape(context, [B, KV, R, T, hd]), [0, 3, 1, 2, 4]), [B * T, H * hd]) as tf.Tensor2D
  return { out: linear(merged, p.o), k, v }
}

// ---- cases ----

interface Case {
  readonly name: string
  readonly heads: number
  readonly kvHeads: number
  readonly B: number
  readonly T: number
  /** Cached positions before the T new ones. */
  readonly P: number
  readonly padding?: ReadonlyArray<number>
}

const cases: ReadonlyArray<Case> = [
  { name: "multi-head", heads: 4, kvHeads: 4, B: 3, T: 24, P: 0 },
  { name: "grouped-query, R = 2", heads: 4, kvHeads: 2, B: 3, T: 24, P: 0 },
  { name: "grouped-query, R = 4", heads: 4, kvHeads: 1, B: 2, T: 24, P: 0 },
  { name: "KV cache (P = 10, T = 6), R = 2", heads: 4, kvHeads: 2, B: 3, T: 6, P: 10 },
  { name: "KV cache, one new token, R = 2", heads: 4, kvHeads: 2, B: 3, T: 1, P: 20 },
  { name: "left padding, R = 2", heads: 4, kvHeads: 2, B: 3, T: 24, P: 0, padding: [0, 5, 11] },
  { name: "left padding with a cache, R = 4", heads: 4, kvHeads: 1, B: 2, T: 4, P: 12, padding: [3, 0] }
]

/** Sizes above the generated kernel's small-product threshold, so wasm runs it. */
const configFor = (c: Case) =>
  tinyConfig({ hiddenSize: 64, headDim: 16 }, { numHeads: c.heads, numKeyValueHeads: c.kvHeads, numLayers: 1 })

interface Outcome {
  readonly out: Float32Array
  readonly k: Float32Array
  readonly v: Float32Array
  /** Gradients of Σ out·dy with respect to x, q, k, v, o weights (and past k, v when cached). */
  readonly grads: ReadonlyArray<Float32Array>
}

type AttentionFn = typeof referenceAttention

/** Runs one case with values drawn from fixed seeds (identical on every backend). */
const runCase = async (c: Case, fn: AttentionFn): Promise<Outcome> => {
  const config = configFor(c)
  const shape = config.layers[0]
  const params = initParams(config, 5, 0.3)
  const p = params.layers[0]
  const hd = config.headDim
  const padding = c.padding ?? new Array<number>(c.B).fill(0)
  const padded = padding.some((x) => x > 0)
  const positions = (padded ? padding : [0]).flatMap((pad) =>
    Array.from({ length: c.T }, (_, t) => Math.max(c.P + t - pad, 0)))
  const result = tf.tidy(() => {
    const tables = ropeTables(hd, config.ropeTheta, positions)
    const x = tf.randomNormal([c.B * c.T, config.hiddenSize], 0, 1, "float32", 1) as tf.Tensor2D
    const dy = tf.randomNormal([c.B * c.T, config.hiddenSize], 0, 1, "float32", 2)
    const pastK = tf.randomNormal([c.B, shape.numKeyValueHeads, c.P, hd], 0, 1, "float32", 3) as tf.Tensor4D
    const pastV = tf.randomNormal([c.B, shape.numKeyValueHeads, c.P, hd], 0, 1, "float32", 4) as tf.Tensor4D
    const inputs: Array<tf.Tensor> = [x, p.q.w, p.k.w, p.v.w, p.o.w, ...(c.P > 0 ? [pastK, pastV] : [])]
    const run = (...t: Array<tf.Tensor>) => {
      const layer: LayerParams = { ...p, q: { w: t[1] as tf.Tensor2D }, k: { w: t[2] as tf.Tensor2D }, v: { w: t[3] as tf.Tensor2D }, o: { w: t[4] as tf.Tensor2D } }
      const past = c.P > 0 ? { k: t[5] as tf.Tensor4D, v: t[6] as tf.Tensor4D } : undefined
      return fn(config, shape, layer, t[0] as tf.Tensor2D, c.B, c.T, tables, past, c.P, padding)
    }
    const forward = run(...inputs)
    const grads = tf.grads((...t: Array<tf.Tensor>) => tf.sum(tf.mul(run(...t).out, dy)))(inputs)
    return [forward.out, forward.k, forward.v, ...grads]
  })
  tf.dispose(Object.values(params.layers[0]).flatMap((l) => (l instanceof tf.Tensor ? [l] : [l.w, ...(l.b ? [l.b] : [])])))
  tf.dispose([params.embed, params.norm, ...(params.lmHead ? [params.lmHead.w] : [])])
  // Read after the tidy: webgpu has only asynchronous reads.
  const [out, k, v, ...grads] = await readAll(result, true)
  return { out, k, v, grads }
}

/** Outputs within `tolerance` absolute (or relative to the largest entry, when `relative`). */
const expectClose = (actual: Outcome, expected: Outcome, tolerance: number, relative = false) => {
  const diff = relative ? relativeDiff : maxAbsDiff
  expect(diff(actual.out, expected.out)).toBeLessThan(tolerance)
  expect(diff(actual.k, expected.k)).toBeLessThan(tolerance)
  expect(diff(actual.v, expected.v)).toBeLessThan(tolerance)
  expect(actual.grads.length).toBe(expected.grads.length)
  actual.grads.forEach((g, i) => expect(relativeDiff(g, expected.grads[i]), `gradient ${i}`).toBeLessThan(tolerance))
}

describe("attention: new formulation equals the previous one on cpu", () => {
  for (const c of cases) {
    it(c.name, async () => {
      await useBackend("cpu")
      expectClose(await runCase(c, attention), await runCase(c, referenceAttention), 1e-5)
    })
  }
})

describe.each(["wasm", "webgpu"] as const)("attention on %s equals cpu", (backend) => {
  for (const c of cases) {
    it(c.name, async () => {
      const [cpu, other] = await onBackends(["cpu", backend], () => runCase(c, attention))
      // Float32 sums in another order (and fused multiply-adds): relative to the largest entry.
      expectClose(other, cpu, 1e-5, true)
    })
  }
})
