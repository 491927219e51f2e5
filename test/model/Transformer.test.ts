import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { generate } from "../../src/model/Generate.ts"
import { matMul2d } from "../../src/model/Linear.ts"
import { countParams, initParams, paramTensors } from "../../src/model/Params.ts"
import { applyRope, ropeTables } from "../../src/model/Rope.ts"
import { emptyCache, forward, nextTokenLoss, rmsNorm } from "../../src/model/Transformer.ts"
import { maxAbsDiff, tinyConfig, useBackend } from "../helpers/backend.ts"

beforeAll(() => useBackend("cpu"))

const logitsOf = (config = tinyConfig(), seed = 1, ids: Array<Array<number>> = [[1, 5, 9, 2, 14, 3]]) =>
  tf.tidy(() => {
    const params = initParams(config, seed, 0.2)
    return forward(config, params, tf.tensor2d(ids, undefined, "int32")).logits.arraySync()
  })

describe("RMSNorm and RoPE against hand-computed values", () => {
  it("RMSNorm of [3, 4] with weight [1, 2] and eps 0.5", () => {
    // mean square 12.5, + eps 13, 1/sqrt(13) = 0.2773501
    const out = tf.tidy(() => rmsNorm(tf.tensor2d([[3, 4]]), tf.tensor1d([1, 2]), 0.5).dataSync())
    expect(out[0]).toBeCloseTo(3 * 0.2773501, 6)
    expect(out[1]).toBeCloseTo(8 * 0.2773501, 6)
  })

  it("RoPE (rotate-half) of [1, 2, 3, 4] at position 2 with theta 100", () => {
    // head_dim 4: inv_freq = [1, 100^(-1/2)] = [1, 0.1], angles [2, 0.2]
    const [a, b] = [2, 0.2]
    const expected = [
      1 * Math.cos(a) - 3 * Math.sin(a),
      2 * Math.cos(b) - 4 * Math.sin(b),
      3 * Math.cos(a) + 1 * Math.sin(a),
      4 * Math.cos(b) + 2 * Math.sin(b)
    ]
    const out = tf.tidy(() => {
      const { cos, sin } = ropeTables(4, 100, [2])
      return applyRope(tf.tensor4d([1, 2, 3, 4], [1, 1, 1, 4]), cos, sin).dataSync()
    })
    expect(maxAbsDiff(out, expected)).toBeLessThan(1e-6)
  })
})

describe("custom-gradient matMul", () => {
  it("equals tfjs autodiff of a plain matMul", () => {
    const [x, w, dy] = [tf.randomNormal([5, 7], 0, 1, "float32", 1), tf.randomNormal([7, 3], 0, 1, "float32", 2), tf.randomNormal([5, 3], 0, 1, "float32", 3)]
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(matMul2d(a as tf.Tensor2D, b as tf.Tensor2D), dy))
    const g = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), dy))
    const [cx, cw] = tf.grads(f)([x, w])
    const [ax, aw] = tf.grads(g)([x, w])
    expect(maxAbsDiff(cx.dataSync(), ax.dataSync())).toBeLessThan(1e-5)
    expect(maxAbsDiff(cw.dataSync(), aw.dataSync())).toBeLessThan(1e-5)
    expect(maxAbsDiff(matMul2d(x as tf.Tensor2D, w as tf.Tensor2D).dataSync(), tf.matMul(x, w).dataSync())).toBeLessThan(1e-6)
    tf.dispose([x, w, dy, cx, cw, ax, aw])
  })
})

describe("forward", () => {
  it("is causal: changing a later token leaves earlier logits unchanged", () => {
    const a = logitsOf(undefined, 1, [[1, 5, 9, 2, 14, 3]])[0]
    const b = logitsOf(undefined, 1, [[1, 5, 9, 2, 14, 7]])[0]
    expect(maxAbsDiff(a.slice(0, 5).flat(), b.slice(0, 5).flat())).toBeLessThan(1e-6)
    expect(maxAbsDiff(a[5], b[5])).toBeGreaterThan(1e-4)
  })

  it("handles tied embeddings and q/k/v bias (Qwen2)", () => {
    const config = tinyConfig({ architecture: "qwen2", tieWordEmbeddings: true, qkvBias: true })
    const params = initParams(config, 3, 0.2)
    expect(params.lmHead).toBeUndefined()
    expect(params.layers[0].q.b?.shape).toEqual([16])
    const logits = tf.tidy(() => forward(config, params, tf.tensor2d([[1, 2, 3]], undefined, "int32")).logits.arraySync())
    expect(logits[0]).toHaveLength(3)
    expect(logits[0][0]).toHaveLength(17)
    tf.dispose(paramTensors(config, params))
  })

  it("left padding does not change a sequence's logits", () => {
    const config = tinyConfig()
    const params = initParams(config, 4, 0.2)
    const alone = tf.tidy(() => forward(config, params, tf.tensor2d([[3, 8, 1]], undefined, "int32")).logits.arraySync())[0]
    const padded = tf.tidy(() =>
      forward(config, params, tf.tensor2d([[0, 0, 3, 8, 1], [4, 4, 4, 4, 4]], undefined, "int32"), { padding: [2, 0] }).logits.arraySync())[0]
    expect(maxAbsDiff(alone.flat(), padded.slice(2).flat())).toBeLessThan(1e-5)
    tf.dispose(paramTensors(config, params))
  })

  it("counts parameters per component", () => {
    const config = tinyConfig()
    const counts = countParams(config)
    const actual = paramTensors(config, initParams(config, 1)).reduce((n, t) => n + t.size, 0)
    expect(counts.total).toBe(actual)
    // by hand: attention per layer 16*16 + 2*16*8 + 16*16 = 768; mlp 3*16*24 = 1152
    expect(counts.attention).toBe(2 * 768)
    expect(counts.mlp).toBe(2 * 1152)
    expect(counts.embedding).toBe(17 * 16)
    expect(counts.lmHead).toBe(17 * 16)
    expect(counts.norms).toBe(16 * 5)
  })
})

describe("next-token loss", () => {
  it("masking targets equals the mean over the unmasked ones", () => {
    const config = tinyConfig()
    const params = initParams(config, 5, 0.2)
    const ids = [[1, 5, 9, 2, 14, 3]]
    const [full, masked] = tf.tidy(() => {
      const logits = forward(config, params, tf.tensor2d([ids[0].slice(0, 5)], undefined, "int32")).logits
      const logp = tf.logSoftmax(logits).arraySync()[0]
      const nll = ids[0].slice(1).map((target, t) => -logp[t][target])
      const lossMasked = nextTokenLoss(config, params, tf.tensor2d(ids, undefined, "int32"), tf.tensor2d([[0, 0, 1, 1, 0]])).dataSync()[0]
      const lossFull = nextTokenLoss(config, params, tf.tensor2d(ids, undefined, "int32")).dataSync()[0]
      return [[lossFull, nll.reduce((a, b) => a + b) / 5], [lossMasked, (nll[2] + nll[3]) / 2]]
    })
    expect(full[0]).toBeCloseTo(full[1], 5)
    expect(masked[0]).toBeCloseTo(masked[1], 5)
    tf.dispose(paramTensors(config, params))
  })
})

/** Decoding as a promise (generate reads its logits asynchronously). */
const gen = (...args: Parameters<typeof generate>) => Effect.runPromise(generate(...args))

describe("decoding with the KV cache", () => {
  const config = tinyConfig({}, { numLayers: 3 })

  it("gives the same greedy tokens and logits as full recomputation", async () => {
    const params = initParams(config, 7, 0.5)
    const prompt = [2, 9, 4]
    const cached = (await gen(config, params, [prompt], { temperature: 0, topP: 1, maxNewTokens: 12 }))[0]
    // Full recomputation: the whole sequence through forward at every step.
    const seq = [...prompt]
    for (let n = 0; n < 12; n++) {
      const row = tf.tidy(() => forward(config, params, tf.tensor2d([seq], undefined, "int32")).logits.arraySync()[0][seq.length - 1])
      seq.push(row.indexOf(Math.max(...row)))
    }
    expect(cached).toEqual(seq.slice(prompt.length))
    expect(new Set(cached).size).toBeGreaterThan(2)
    // And the logits of the last step agree.
    const inc = tf.tidy(() => {
      const first = forward(config, params, tf.tensor2d([seq.slice(0, -1)], undefined, "int32"), { cache: emptyCache([0]) })
      return forward(config, params, tf.tensor2d([seq.slice(-1)], undefined, "int32"), { cache: first.cache }).logits.arraySync()[0][0]
    })
    const full = tf.tidy(() => forward(config, params, tf.tensor2d([seq], undefined, "int32")).logits.arraySync()[0][seq.length - 1])
    expect(maxAbsDiff(inc, full)).toBeLessThan(1e-5)
    tf.dispose(paramTensors(config, params))
  })

  it("batches prompts of different lengths like one-by-one decoding", async () => {
    const params = initParams(config, 8, 0.5)
    const prompts = [[3], [5, 1, 7, 2], [9, 9]]
    const batched = await gen(config, params, prompts, { temperature: 0, topP: 1, maxNewTokens: 8 })
    const single: Array<Array<number>> = []
    for (const p of prompts) single.push((await gen(config, params, [p], { temperature: 0, topP: 1, maxNewTokens: 8 }))[0])
    expect(batched).toEqual(single)
    tf.dispose(paramTensors(config, params))
  })

  it("stops a sequence at a stop token", async () => {
    const params = initParams(config, 7, 0.5)
    const free = (await gen(config, params, [[2, 9, 4]], { temperature: 0, topP: 1, maxNewTokens: 12 }))[0]
    const stopAt = free[3]
    const stopped = (await gen(config, params, [[2, 9, 4]], { temperature: 0, topP: 1, maxNewTokens: 12, stopTokens: [stopAt] }))[0]
    expect(stopped).toEqual(free.slice(0, free.indexOf(stopAt) + 1))
    tf.dispose(paramTensors(config, params))
  })

  it("samples reproducibly from a seed, and top-p near 0 is greedy", async () => {
    const params = initParams(config, 9, 0.5)
    const sample = async (seed: number, topP = 1) =>
      (await gen(config, params, [[1, 2]], { temperature: 1, topP, maxNewTokens: 16, seed }))[0]
    expect(await sample(11)).toEqual(await sample(11))
    expect(await sample(11)).not.toEqual(await sample(12))
    expect(await sample(11, 1e-6)).toEqual((await gen(config, params, [[1, 2]], { temperature: 0, topP: 1, maxNewTokens: 16 }))[0])
    tf.dispose(paramTensors(config, params))
  })
})
