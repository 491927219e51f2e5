/**
 * Rollout sampling and the GRPO loss on a tiny model: seeded, grouped rollouts whose per-token
 * log-probs (from incremental decoding with the KV cache) equal a full forward's; the loss
 * gradient against central finite differences for one fixed rollout batch; no gradient at all
 * when advantages are 0 and the policy is its own reference.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { generate } from "../../src/model/Generate.ts"
import { initParams, type Params, paramSpecs, paramTensors, assembleParams } from "../../src/model/Params.ts"
import { Rng } from "../../src/model/Rng.ts"
import { buildRolloutBatch, grpoLossAndGradients, type RolloutBatch, sequenceLogProbs } from "../../src/tune/GrpoLoss.ts"
import { sampleRollouts, tfjsRolloutDecoder, tokenLogProb } from "../../src/tune/Rollouts.ts"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import { maxAbsDiff, numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"
import { fixedRolloutBatch, grpoPrompts } from "./_support.ts"

const config = tinyConfig()
let params: Params
beforeAll(async () => {
  await useBackend("cpu")
  params = initParams(config, 5, 0.5)
})

const prompts = grpoPrompts
const sampling = { rollouts: 3, temperature: 1, topP: 1, maxNewTokens: 6, stopTokens: [2] }

/** Rollouts as a promise (decoding reads its logits asynchronously). */
const rolloutsOf = (config: ModelConfig, params: Params, ...args: Tail<Parameters<typeof sampleRollouts>>) =>
  Effect.runPromise(sampleRollouts(tfjsRolloutDecoder({ config, params }), ...args))
type Tail<T extends ReadonlyArray<unknown>> = T extends readonly [unknown, ...infer Rest] ? Rest : never

describe("rollouts", () => {
  it("are grouped by prompt, replay from a generator state, and differ for another seed", async () => {
    const rng = Rng.seeded(11)
    const saved = rng.state()
    const first = await rolloutsOf(config, params, prompts, sampling, rng)
    expect(first.map((r) => r.prompt)).toEqual([0, 0, 0, 1, 1, 1])
    const again = await rolloutsOf(config, params, prompts, sampling, Rng.fromState(saved))
    expect(again).toEqual(first)
    // Decoding in batches of 2 draws in the same order, so it samples the same tokens (the
    // log-probs differ in the last bits: other rows, other padding).
    const inTwos = await rolloutsOf(config, params, prompts, { ...sampling, batchSize: 2 }, Rng.fromState(saved))
    expect(inTwos.map((r) => r.completion)).toEqual(first.map((r) => r.completion))
    expect(maxAbsDiff(inTwos.flatMap((r) => r.logProbs), first.flatMap((r) => r.logProbs))).toBeLessThan(1e-5)
    const other = await rolloutsOf(config, params, prompts, sampling, Rng.seeded(12))
    expect(other.map((r) => r.completion)).not.toEqual(first.map((r) => r.completion))
    // The generator moved on: the next call samples new rollouts.
    expect((await rolloutsOf(config, params, prompts, sampling, rng)).map((r) => r.completion)).not.toEqual(first.map((r) => r.completion))
    for (const r of first) {
      expect(r.completion.length).toBeGreaterThan(0)
      expect(r.completion.length).toBeLessThanOrEqual(6)
      expect(r.completion.slice(0, -1)).not.toContain(2) // a stop token ends the completion
      expect(r.logProbs).toHaveLength(r.completion.length)
    }
  })

  it("at temperature 0, or with a top-p below every token's probability, are greedy", async () => {
    const greedy: Array<Array<number>> = []
    for (const p of prompts) greedy.push((await Effect.runPromise(generate(config, params, [p], { temperature: 0, topP: 1, maxNewTokens: 6, stopTokens: [2] })))[0])
    for (const options of [{ temperature: 0, topP: 1 }, { temperature: 1, topP: 1e-9 }]) {
      const rollouts = await rolloutsOf(config, params, prompts, { ...sampling, ...options }, Rng.seeded(3))
      expect(rollouts.map((r) => r.completion)).toEqual([greedy[0], greedy[0], greedy[0], greedy[1], greedy[1], greedy[1]])
    }
  })

  it("carry the log-probs a full forward over prompt and completion gives (KV cache and padding included)", async () => {
    for (const temperature of [1, 0.7]) {
      const rollouts = await rolloutsOf(config, params, prompts, { ...sampling, temperature }, Rng.seeded(4))
      const batch = buildRolloutBatch(prompts, rollouts, rollouts.map(() => 0), 0)
      const full = await Effect.runPromise(sequenceLogProbs(config, params, batch, temperature))
      expect(maxAbsDiff(full, batch.oldLogProbs)).toBeLessThan(2e-5)
    }
  })

  it("score a token's log-prob as log softmax(logits / T)", () => {
    const logits = [1, 2, 3]
    const z = Math.log(Math.exp(0.5) + Math.exp(1) + Math.exp(1.5))
    expect(tokenLogProb(logits, 1, 2)).toBeCloseTo(1 - z, 12)
    expect(tokenLogProb(logits, 2, 0)).toBeCloseTo(3 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)), 12)
  })
})

/** A large KL coefficient, so that an error in either term shows in the gradient. */
const options = { clip: 0.2, klCoef: 1, temperature: 1 }

const lossAt = async (p: Params, batch: RolloutBatch, ref: Float32Array) => {
  const result = await Effect.runPromise(grpoLossAndGradients(config, p, batch, ref, options))
  tf.dispose(result.grads)
  return result.loss
}

/** The params moved by `h` along `direction` (one tensor per parameter). */
const moved = (direction: ReadonlyArray<tf.Tensor>, h: number): Params => {
  const names = paramSpecs(config).map((s) => s.name)
  const tensors = paramTensors(config, params).map((t, i) => tf.add(t, tf.mul(direction[i], h)))
  return assembleParams(config, (name) => tensors[names.indexOf(name)])
}

describe("the GRPO loss", () => {
  it("has the gradient central finite differences measure, along random directions and per coordinate", async () => {
    const { batch, ref } = await fixedRolloutBatch(config, params)
    const result = await Effect.runPromise(grpoLossAndGradients(config, params, batch, ref, options))
    expect(result.tokens).toBe(15)
    expect(result.clipFraction).toBeGreaterThan(0)
    expect(result.kl).toBeGreaterThan(0)
    const rng = Rng.seeded(8)
    const h = 1e-3
    const count = paramTensors(config, params).reduce((n, t) => n + t.size, 0)
    for (let trial = 0; trial < 3; trial++) {
      // A random direction of unit length.
      const direction = paramTensors(config, params).map((t) =>
        tf.tensor(Float32Array.from({ length: t.size }, () => rng.normal() / Math.sqrt(count)), t.shape))
      const analytic = direction.reduce((sum, d, i) => sum + tf.tidy(() => tf.sum(tf.mul(d, result.grads[i])).dataSync()[0]), 0)
      const plus = moved(direction, h)
      const minus = moved(direction, -h)
      const numeric = (await lossAt(plus, batch, ref) - await lossAt(minus, batch, ref)) / (2 * h)
      tf.dispose([...direction, ...paramTensors(config, plus), ...paramTensors(config, minus)])
      expect(Math.abs(numeric - analytic), `trial ${trial}: ${numeric} vs ${analytic}`).toBeLessThan(5e-4 + 2e-3 * Math.abs(analytic))
    }
    // Single coordinates of the embedding, a query projection and the LM head.
    for (const [spec, flat] of [["model.embed_tokens.weight", 4 * 16 + 3], ["model.layers.1.self_attn.q_proj.weight", 37], ["lm_head.weight", 100]] as const) {
      const i = paramSpecs(config).findIndex((s) => s.name === spec)
      const unit = paramTensors(config, params).map((t, j) => {
        const values = new Float32Array(t.size)
        if (j === i) values[flat] = 1
        return tf.tensor(values, t.shape)
      })
      const plus = moved(unit, h)
      const minus = moved(unit, -h)
      const numeric = (await lossAt(plus, batch, ref) - await lossAt(minus, batch, ref)) / (2 * h)
      const analytic = result.grads[i].dataSync()[flat]
      tf.dispose([...unit, ...paramTensors(config, plus), ...paramTensors(config, minus)])
      expect(Math.abs(numeric - analytic), `${spec}[${flat}]: ${numeric} vs ${analytic}`).toBeLessThan(3e-4 + 2e-3 * Math.abs(analytic))
    }
    tf.dispose(result.grads)
  })

  it("is 0 with no gradient when advantages are 0 and the policy is its own reference", async () => {
    const before = numTensors()
    const { batch } = await fixedRolloutBatch(config, params)
    const still = { ...batch, advantages: new Float32Array(batch.batchSize) }
    const ref = await Effect.runPromise(sequenceLogProbs(config, params, still, 1))
    const result = await Effect.runPromise(grpoLossAndGradients(config, params, { ...still, oldLogProbs: ref }, ref, options))
    expect(result.loss).toBe(0)
    expect(result.kl).toBe(0)
    expect(result.clipFraction).toBe(0)
    for (const g of result.grads) expect(maxAbsDiff(g.dataSync(), new Float32Array(g.size))).toBe(0)
    tf.dispose(result.grads)
    expect(numTensors()).toBe(before)
  })
})
