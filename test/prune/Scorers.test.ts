import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { generate } from "../../src/model/Generate.ts"
import { disposeParams, initParams, type Params } from "../../src/model/Params.ts"
import { forward, nextTokenLoss } from "../../src/model/Transformer.ts"
import { type CalibrationBatch, calibrationBatch } from "../../src/prune/Calibration.ts"
import { InvalidPruneRequest } from "../../src/prune/Errors.ts"
import { contributionScores } from "../../src/prune/HeadScorers.ts"
import { blockInfluenceScores, skipLossScores } from "../../src/prune/LayerScorers.ts"
import { activationScores, contrastiveScores, taylorScores, wandaScores } from "../../src/prune/NeuronScorers.ts"
import { randomScores } from "../../src/prune/RandomScores.ts"
import { scoreModel, scorersFor } from "../../src/prune/Scorers.ts"
import { residentSource } from "../../src/model/WeightSource.ts"
import { rankAscending, units } from "../../src/prune/Scores.ts"
import { tinyConfig, useBackend } from "../helpers/backend.ts"
import { deadBlock, deadGroup, deadNeurons, editLayer, randomBatches } from "./_support.ts"
import { unlimitedRoom } from "../helpers/room.ts"

beforeAll(() => useBackend("cpu"))

const config = tinyConfig({}, { numLayers: 3 })
const batches = randomBatches(config.vocabSize, { sequences: 12, batchSize: 4, minLen: 3, maxLen: 10, seed: 1 })
const general = randomBatches(config.vocabSize, { sequences: 30, batchSize: 8, minLen: 3, maxLen: 10, seed: 2 })

/** Every layer has a dead neuron (index 5 + layer), every score ranks it least important. */
describe("neuron scorers rank a planted dead neuron last", () => {
  const planted = (seed: number): Params => {
    let params = initParams(config, seed, 0.3)
    for (let i = 0; i < 3; i++) params = deadNeurons(params, i, [5 + i])
    return params
  }

  it.each([
    ["activation", activationScores],
    ["wanda", wandaScores],
    ["taylor", taylorScores]
  ] as const)("%s", async (_name, scorer) => {
    const params = planted(1)
    const scores = await Effect.runPromise(scorer(residentSource(config, params, unlimitedRoom), batches))
    expect(scores.samples).toBe(12)
    scores.perLayer.forEach((values, i) => {
      expect(values).toHaveLength(24)
      expect(values[5 + i]).toBe(0)
      expect(rankAscending(values)[0]).toBe(5 + i)
      expect(rankAscending(values).slice(1).every((j) => values[j] > 0)).toBe(true)
    })
    disposeParams(config, params)
  })

  it("contrastive (ties allowed: its scores are frequencies)", async () => {
    const params = planted(2)
    const scores = await Effect.runPromise(contrastiveScores(residentSource(config, params, unlimitedRoom), batches, general, { topN: 6 }))
    scores.perLayer.forEach((values, i) => {
      expect(values[5 + i]).toBe(Math.min(...values))
      expect(scores.details!.taskFrequency[i][5 + i]).toBe(0)
      expect(scores.details!.generalFrequency[i][5 + i]).toBe(0)
    })
    disposeParams(config, params)
  })
})

describe("contrastive scorer", () => {
  it("counts positive top-n membership of signed last-token activations, protects general favourites, caps samples", async () => {
    const params = initParams(config, 3, 0.3)
    const topN = 4
    // Reference counts straight from the forward's observed activations.
    const hitsOf = (data: ReadonlyArray<CalibrationBatch>, maxSamples: number) => {
      const hits = config.layers.map(() => new Array<number>(24).fill(0))
      let seen = 0
      for (const batch of data) {
        const acts: Array<Array<Array<number>>> = []
        tf.tidy(() => {
          forward(config, params, tf.tensor2d(batch.ids, [batch.batchSize, batch.seqLen], "int32"), {
            observe: (i, name, t) => {
              if (name === "mlp.act") acts[i] = t.arraySync()
            }
          })
        })
        for (let b = 0; b < batch.batchSize && seen < maxSamples; b++, seen++) {
          acts.forEach((rows, i) => {
            const row = rows[b * batch.seqLen + batch.lengths[b] - 1]
            const top = row.map((v, j) => [v, j]).sort((x, y) => y[0] - x[0]).slice(0, topN).filter(([v]) => v > 0).map(([, j]) => j)
            for (const j of top) hits[i][j]++
          })
        }
      }
      return { hits, seen }
    }
    const task = hitsOf(batches, 10)
    const gen = hitsOf(general, 25)
    const scores = await Effect.runPromise(contrastiveScores(residentSource(config, params, unlimitedRoom), batches, general, { topN, taskSamples: 10, generalSamples: 25 }))
    expect(scores.samples).toBe(35)
    scores.perLayer.forEach((values, i) => {
      const protectedSet = new Set(
        gen.hits[i].map((h, j) => [h, j]).filter(([h]) => h > 0).sort((x, y) => y[0] - x[0] || x[1] - y[1]).slice(0, topN).map(([, j]) => j)
      )
      for (let j = 0; j < 24; j++) {
        const expected = (protectedSet.has(j) ? 2 : 0) + task.hits[i][j] / 10 + gen.hits[i][j] / 25 / 11
        expect(values[j]).toBeCloseTo(expected, 12)
      }
      // Protected neurons rank after every unprotected one; among the rest, task frequency decides.
      const order = rankAscending(values)
      const firstProtected = order.findIndex((j) => protectedSet.has(j))
      expect(order.slice(firstProtected).every((j) => protectedSet.has(j))).toBe(true)
    })
    disposeParams(config, params)
  })
})

describe("taylor", () => {
  it("matches a central finite difference of the loss in each neuron's down_proj scale", async () => {
    const params = initParams(config, 4, 0.5)
    const batch = batches[0]
    const scores = await Effect.runPromise(taylorScores(residentSource(config, params, unlimitedRoom), [batch]))
    const loss = (p: Params) =>
      tf.tidy(() =>
        nextTokenLoss(
          config,
          p,
          tf.tensor2d(batch.ids, [batch.batchSize, batch.seqLen], "int32"),
          tf.tensor2d(batch.weights!, [batch.batchSize, batch.seqLen - 1])
        ).dataSync()[0]
      )
    const eps = 0.01
    const scaled = (i: number, j: number, factor: number): Params =>
      editLayer(params, i, (p) => ({
        ...p,
        down: {
          w: tf.tidy(() => {
            const scale = Float32Array.from({ length: 24 }, (_, k) => (k === j ? factor : 1))
            return tf.mul(p.down.w, tf.tensor2d(scale, [24, 1])) as tf.Tensor2D
          })
        }
      }))
    let checked = 0
    for (let i = 0; i < 3; i++) {
      // The four most important neurons of each layer (largest signals, least float noise).
      for (const j of rankAscending(scores.perLayer[i]).slice(-4)) {
        const up = scaled(i, j, 1 + eps)
        const down = scaled(i, j, 1 - eps)
        const fd = Math.abs((loss(up) - loss(down)) / (2 * eps))
        up.layers[i].down.w.dispose()
        down.layers[i].down.w.dispose()
        expect(scores.perLayer[i][j]).toBeGreaterThan(1e-4)
        expect(Math.abs(fd - scores.perLayer[i][j])).toBeLessThan(0.003 * scores.perLayer[i][j] + 1e-5)
        checked++
      }
    }
    expect(checked).toBe(12)
    disposeParams(config, params)
  })
})

describe("head scorer", () => {
  it("contribution ranks a key/value group with zero o_proj rows last", async () => {
    const params = deadGroup(config, deadGroup(config, initParams(config, 5, 0.3), 0, 1), 2, 0)
    const scores = await Effect.runPromise(contributionScores(residentSource(config, params, unlimitedRoom), batches))
    expect(scores.perLayer.map((v) => v.length)).toEqual([2, 2, 2])
    expect(scores.perLayer[0][1]).toBe(0)
    expect(scores.perLayer[0][0]).toBeGreaterThan(0)
    expect(scores.perLayer[2][0]).toBe(0)
    expect(scores.perLayer[1].every((x) => x > 0)).toBe(true)
    disposeParams(config, params)
  })
})

describe("layer scorers rank a planted dead block last", () => {
  const deep = tinyConfig({}, { numLayers: 4 })

  it("block influence", async () => {
    const params = deadBlock(initParams(deep, 6, 0.5), 2)
    const scores = await Effect.runPromise(blockInfluenceScores(residentSource(deep, params, unlimitedRoom), batches))
    expect(scores.perBlock[2]).toBeLessThan(1e-6)
    expect(rankAscending(scores.perBlock)[0]).toBe(2)
    expect([0, 1, 3].every((i) => scores.perBlock[i] > 1e-3)).toBe(true)
    disposeParams(deep, params)
  })

  it("skip loss, on text sampled from the model itself (so skipping a live block costs loss)", async () => {
    const params = deadBlock(initParams(deep, 7, 0.5), 1)
    const sampled = await Effect.runPromise(generate(deep, params, Array.from({ length: 16 }, (_, b) => [1 + (b % 16)]), {
      temperature: 1,
      topP: 1,
      maxNewTokens: 15,
      seed: 3
    }))
    const data = [0, 8].map((s) =>
      calibrationBatch(sampled.slice(s, s + 8).map((seq, b) => [1 + ((s + b) % 16), ...seq]), 0, 64)
    )
    const scores = await Effect.runPromise(skipLossScores(residentSource(deep, params, unlimitedRoom), data))
    expect(scores.perBlock[1]).toBe(0)
    expect(rankAscending(scores.perBlock)[0]).toBe(1)
    expect([0, 2, 3].every((i) => scores.perBlock[i] > 0)).toBe(true)
    disposeParams(deep, params)
  })
})

describe("streaming, random control, leaks, dispatch", () => {
  it("scores over batches equal the scores over one batch of the same sequences", async () => {
    const params = initParams(config, 8, 0.3)
    const split = randomBatches(config.vocabSize, { sequences: 6, batchSize: 2, minLen: 3, maxLen: 9, seed: 9 })
    const whole = randomBatches(config.vocabSize, { sequences: 6, batchSize: 6, minLen: 3, maxLen: 9, seed: 9 })
    for (const scorer of [activationScores, wandaScores]) {
      const a = await Effect.runPromise(scorer(residentSource(config, params, unlimitedRoom), split))
      const b = await Effect.runPromise(scorer(residentSource(config, params, unlimitedRoom), whole))
      expect(a.tokens).toBe(b.tokens)
      a.perLayer.forEach((v, i) => v.forEach((x, j) => expect(x).toBeCloseTo(b.perLayer[i][j], 5)))
    }
    const a = await Effect.runPromise(blockInfluenceScores(residentSource(config, params, unlimitedRoom), split))
    const b = await Effect.runPromise(blockInfluenceScores(residentSource(config, params, unlimitedRoom), whole))
    a.perBlock.forEach((x, i) => expect(x).toBeCloseTo(b.perBlock[i], 5))
    disposeParams(config, params)
  })

  it("random scores are reproducible from the seed and differ between seeds", () => {
    expect(randomScores(config, "neurons", 1).perLayer).toEqual(randomScores(config, "neurons", 1).perLayer)
    expect(randomScores(config, "neurons", 1).perLayer[0]).not.toEqual(randomScores(config, "neurons", 2).perLayer[0])
    expect(randomScores(config, "heads", 1).perLayer.map((v) => v.length)).toEqual([2, 2, 2])
    expect(randomScores(config, "layers", 1).perBlock).toHaveLength(3)
  })

  it("no scorer leaks tensors", async () => {
    const params = initParams(config, 10, 0.3)
    const start = tf.memory().numTensors
    // Every scorer the registry lists, so one added later is checked too.
    for (const [unit, scorer] of units.flatMap((u) => scorersFor[u].map((s) => [u, s] as const))) {
      await Effect.runPromise(scoreModel(config, params, unlimitedRoom, unit, scorer, { task: batches.slice(0, 1), general: general.slice(0, 1) }))
      expect(tf.memory().numTensors, `${unit}/${scorer}`).toBe(start)
    }
    disposeParams(config, params)
  })

  it("an unknown scorer, or contrastive without general text, is an InvalidPruneRequest", async () => {
    const params = initParams(config, 11)
    const unknown = await Effect.runPromise(Effect.flip(scoreModel(config, params, unlimitedRoom, "heads", "taylor", { task: batches })))
    expect(unknown).toBeInstanceOf(InvalidPruneRequest)
    expect(unknown.message).toContain("contribution, random")
    const noGeneral = await Effect.runPromise(Effect.flip(scoreModel(config, params, unlimitedRoom, "neurons", "contrastive", { task: batches })))
    expect(noGeneral.message).toContain("general text")
    disposeParams(config, params)
  })
})
