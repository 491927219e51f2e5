/**
 * GRPO's arithmetic against hand-computed values: group-normalised advantages, the clipped
 * surrogate and which tokens it clips, the k3 KL estimator (0 with 0 gradient at π = π_ref).
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { beforeAll } from "vitest"
import { clippedSurrogate, clippedTokens, groupAdvantages, grpoTokenLoss, k3Kl, tokenMean } from "../../src/tune/GrpoObjective.ts"
import { maxAbsDiff, useBackend } from "../helpers/backend.ts"

beforeAll(() => useBackend("cpu"))

const values = (t: tf.Tensor) => {
  const out = Array.from(t.dataSync())
  t.dispose()
  return out
}

describe("group-normalised advantages", () => {
  it("are (r − mean) / (sample std + 1e-6) within each group", () => {
    // Groups of 3: [3, 0, 0] has mean 1 and sample variance (4 + 1 + 1) / 2 = 3; [1, 1, 1] has std 0.
    const advantages = groupAdvantages([3, 0, 0, 1, 1, 1], 3)
    const s = Math.sqrt(3) + 1e-6
    expect(maxAbsDiff(advantages, [2 / s, -1 / s, -1 / s, 0, 0, 0])).toBeLessThan(1e-12)
    // Groups of 2: [1, 0] → mean 0.5, std √0.5; [0.25, 0.75] → mean 0.5, std √0.125.
    const pair = groupAdvantages([1, 0, 0.25, 0.75], 2)
    const t = Math.sqrt(0.5) + 1e-6
    const u = Math.sqrt(0.125) + 1e-6
    expect(maxAbsDiff(pair, [0.5 / t, -0.5 / t, -0.25 / u, 0.25 / u])).toBeLessThan(1e-12)
  })

  it("need whole groups of at least two", () => {
    expect(() => groupAdvantages([1, 2, 3], 2)).toThrow(RangeError)
    expect(() => groupAdvantages([1, 2], 1)).toThrow(RangeError)
  })
})

describe("the clipped surrogate", () => {
  // ratios 1.5, 0.5, 1.1, 1.5 with advantages 1, −1, 2, −1 (ε = 0.2):
  //   min(1.5, 1.2) = 1.2 (clipped), min(−0.5, −0.8) = −0.8 (clipped), 2.2, min(−1.5, −1.2) = −1.5
  const logProbs = [Math.log(1.5), Math.log(0.5), Math.log(1.1), Math.log(1.5)]
  const advantages = [1, -1, 2, -1]

  it("takes PPO's pessimistic bound", () => {
    const surrogate = values(clippedSurrogate(tf.tensor1d(logProbs), tf.zeros([4]), tf.tensor1d(advantages), 0.2))
    expect(maxAbsDiff(surrogate, [1.2, -0.8, 2.2, -1.5])).toBeLessThan(1e-6)
    expect(values(clippedTokens(tf.tensor1d(logProbs), tf.zeros([4]), tf.tensor1d(advantages), 0.2))).toEqual([1, 1, 0, 0])
  })

  it("has no gradient through the clipped tokens and A·ρ through the others", () => {
    const grad = tf.grad((lp: tf.Tensor) => tf.sum(clippedSurrogate(lp, tf.zeros([4]), tf.tensor1d(advantages), 0.2)))
    // d(ρ·A)/d log π = ρ·A.
    expect(maxAbsDiff(values(grad(tf.tensor1d(logProbs))), [0, 0, 1.1 * 2, 1.5 * -1])).toBeLessThan(1e-6)
  })
})

describe("the k3 KL estimator", () => {
  it("is exp(ref − logp) − (ref − logp) − 1", () => {
    // logp = log 0.5, ref = log 0.25: δ = log 0.5, k3 = 0.5 − log 0.5 − 1.
    const kl = values(k3Kl(tf.tensor1d([Math.log(0.5), -1]), tf.tensor1d([Math.log(0.25), -3])))
    expect(maxAbsDiff(kl, [0.5 - Math.log(0.5) - 1, Math.exp(-2) + 2 - 1])).toBeLessThan(1e-6)
  })

  it("is 0 with gradient 0 where the policy equals the reference", () => {
    const at = tf.tensor1d([-0.1, -2.3, -7])
    expect(values(k3Kl(at, at))).toEqual([0, 0, 0])
    const grad = tf.grad((lp: tf.Tensor) => tf.sum(k3Kl(lp, at)))(at)
    expect(values(grad)).toEqual([0, 0, 0])
    at.dispose()
  })
})

describe("the per-token loss", () => {
  it("is −surrogate + β·k3, averaged over the tokens that count", () => {
    const logProbs = tf.tensor2d([[Math.log(1.5), Math.log(0.5)], [Math.log(1.1), 0]])
    const ref = tf.tensor2d([[0, 0], [Math.log(1.1), 0]])
    const loss = grpoTokenLoss(logProbs, tf.zeros([2, 2]), ref, tf.tensor2d([[1], [2]]), { clip: 0.2, klCoef: 0.5 })
    const k3 = (lp: number) => Math.exp(-lp) + lp - 1
    const expected = [[-1.2 + 0.5 * k3(Math.log(1.5)), -0.5 + 0.5 * k3(Math.log(0.5))], [-2.2, -2]]
    expect(maxAbsDiff(loss.dataSync(), expected.flat())).toBeLessThan(1e-6)
    // The last token is padding: mean over the other three.
    const mean = values(tokenMean(loss, tf.tensor2d([[1, 1], [1, 0]])))[0]
    expect(mean).toBeCloseTo((expected[0][0] + expected[0][1] + expected[1][0]) / 3, 6)
    tf.dispose([logProbs, ref, loss])
  })
})
