import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Exit } from "effect"
import { beforeAll } from "vitest"
import { initParams, paramTensors } from "../../src/model/Params.ts"
import { adamWStep, defaultAdamW, initAdamW } from "../../src/tune/AdamW.ts"
import { buildBatch, startCursor, takeExamples } from "../../src/tune/Batches.ts"
import { clipByGlobalNorm, globalNorm } from "../../src/tune/ClipGrad.ts"
import { learningRate, warmupCosine } from "../../src/tune/Schedule.ts"
import { initTrainer, type TrainerState, trainStep } from "../../src/tune/Trainer.ts"
import { localGradients, tinyConfig, useBackend } from "../helpers/backend.ts"
import { toyData, toyOptions } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

describe("learning-rate schedule", () => {
  const schedule = { peakLr: 1e-3, minLr: 1e-4, warmupSteps: 10, totalSteps: 110 }
  it("warms up linearly, then follows a cosine to the minimum", () => {
    expect(learningRate(schedule, 0)).toBeCloseTo(1e-4, 12)
    expect(learningRate(schedule, 4)).toBeCloseTo(5e-4, 12)
    expect(learningRate(schedule, 9)).toBeCloseTo(1e-3, 12)
    expect(learningRate(schedule, 10)).toBeCloseTo(1e-3, 12)
    // halfway through the decay: min + (peak - min) / 2
    expect(learningRate(schedule, 60)).toBeCloseTo(5.5e-4, 12)
    expect(learningRate(schedule, 110)).toBeCloseTo(1e-4, 12)
    expect(learningRate(schedule, 500)).toBeCloseTo(1e-4, 12)
  })
  it("warmupCosine takes 5% of the steps for warmup", () => {
    expect(warmupCosine(1e-3, 200).warmupSteps).toBe(10)
  })
})

describe("gradient clipping", () => {
  it.effect("bounds the global norm and leaves small gradients alone", () => Effect.gen(function*() {
    const grads = [tf.tensor1d([3, 0]), tf.tensor2d([[0, 4]])] // norm 5
    const clipped = yield* clipByGlobalNorm(grads, 1)
    expect(clipped.norm).toBeCloseTo(5, 5)
    expect(yield* globalNorm(clipped.grads)).toBeCloseTo(1, 4)
    const kept = yield* clipByGlobalNorm(grads, 10)
    expect(Array.from(kept.grads[0].dataSync())).toEqual([3, 0])
    tf.dispose([...grads, ...clipped.grads, ...kept.grads])
  }))
})

describe("AdamW", () => {
  it("matches a hand-computed first and second step", () => {
    const p = [tf.tensor2d([[1, -2]])]
    const opts = { ...defaultAdamW, weightDecay: 0.1 }
    let state = initAdamW(p)
    const g1 = [tf.tensor2d([[0.5, 0.5]])]
    const s1 = adamWStep(opts, state, p, g1, 0.01)
    // step 1: m̂ = g, v̂ = g² → update = g/(|g|+eps) = sign(g); p = p(1 - lr·wd) - lr
    const expected1 = [1 * (1 - 0.001) - 0.01, -2 * (1 - 0.001) - 0.01]
    Array.from(s1.params[0].dataSync()).forEach((v, i) => expect(v).toBeCloseTo(expected1[i], 6))
    const g2 = [tf.tensor2d([[-1, 0.5]])]
    const s2 = adamWStep(opts, s1.state, s1.params, g2, 0.01)
    const m = (g1v: number, g2v: number) => (0.9 * 0.1 * g1v + 0.1 * g2v) / (1 - 0.81)
    const v = (g1v: number, g2v: number) => (0.999 * 0.001 * g1v ** 2 + 0.001 * g2v ** 2) / (1 - 0.999 ** 2)
    const expected2 = expected1.map((p1, i) => {
      const [a, b] = i === 0 ? [0.5, -1] : [0.5, 0.5]
      return p1 * (1 - 0.001) - 0.01 * m(a, b) / (Math.sqrt(v(a, b)) + 1e-8)
    })
    Array.from(s2.params[0].dataSync()).forEach((v2, i) => expect(v2).toBeCloseTo(expected2[i], 6))
    expect(s2.state.step).toBe(2)
    state = s2.state
    tf.dispose([...p, ...g1, ...g2, ...s1.params, ...s2.params, ...state.m, ...state.v])
  })
})

describe("batches", () => {
  it("masks prompt and padding targets and truncates", () => {
    const batch = buildBatch([{ ids: [5, 6, 7, 8], promptLength: 2 }, { ids: [1, 2], promptLength: 1 }], 4, 0, true)
    expect(Array.from(batch.ids)).toEqual([5, 6, 7, 8, 1, 2, 0, 0])
    // targets of row 0: 6 (prompt, masked), 7, 8; row 1: 2, then padding
    expect(Array.from(batch.weights!)).toEqual([0, 1, 1, 1, 0, 0])
    const cpt = buildBatch([{ ids: [5, 6, 7, 8, 9], promptLength: 2 }], 4, 0, false)
    expect(Array.from(cpt.weights!)).toEqual([1, 1, 1])
  })

  it("visits every example once per epoch in a seeded order", () => {
    const examples = Array.from({ length: 7 }, (_, i) => ({ ids: [i], promptLength: 0 }))
    const first = takeExamples(examples, startCursor(3), 7)
    expect(first.batch.map((e) => e.ids[0]).sort()).toEqual([0, 1, 2, 3, 4, 5, 6])
    expect(takeExamples(examples, startCursor(3), 7).batch).toEqual(first.batch)
    expect(takeExamples(examples, startCursor(4), 7).batch).not.toEqual(first.batch)
    const next = takeExamples(examples, first.cursor, 7)
    expect(next.cursor.epoch).toBe(1)
    expect(next.batch.map((e) => e.ids[0]).sort()).toEqual([0, 1, 2, 3, 4, 5, 6])
  })
})

const options = toyOptions

const run = (state: TrainerState, steps: number, opts = options) =>
  Effect.gen(function*() {
    const losses: Array<number> = []
    let current = state
    for (let i = 0; i < steps; i++) {
      const out = yield* trainStep(config, current, toyData, opts).pipe(Effect.provide(localGradients))
      losses.push(out.report.loss)
      current = out.state
    }
    return { state: current, losses }
  })

const config = tinyConfig()

describe("trainer", () => {
  it.effect("learns a toy task within a few dozen steps, without leaking tensors", () =>
    Effect.gen(function*() {
      const warm = yield* run(initTrainer(initParams(config, 1), config, 7), 2)
      const before = tf.memory().numTensors
      const { losses, state } = yield* run(warm.state, 38)
      expect(tf.memory().numTensors).toBe(before)
      expect(losses[losses.length - 1]).toBeLessThan(0.3 * warm.losses[0])
      tf.dispose(paramTensors(config, state.params))
    }))

  it.effect("accumulating two half batches equals one full batch", () =>
    Effect.gen(function*() {
      const a = yield* run(initTrainer(initParams(config, 2), config, 9), 1)
      const b = yield* run(initTrainer(initParams(config, 2), config, 9), 1, { ...options, batchSize: 4, accumulation: 2 })
      expect(b.losses[0]).toBeCloseTo(a.losses[0], 5)
      const [wa, wb] = [a.state.params.layers[0].gate.w.dataSync(), b.state.params.layers[0].gate.w.dataSync()]
      let max = 0
      for (let i = 0; i < wa.length; i++) max = Math.max(max, Math.abs(wa[i] - wb[i]))
      expect(max).toBeLessThan(1e-6)
    }))

  it.effect("a NaN loss is a typed error and the step changes nothing", () =>
    Effect.gen(function*() {
      const params = initParams(config, 3)
      const poisoned = { ...params, norm: tf.fill([config.hiddenSize], NaN) as tf.Tensor1D }
      const state = initTrainer(poisoned, config, 1)
      const exit = yield* Effect.exit(trainStep(config, state, toyData, options).pipe(Effect.provide(localGradients)))
      expect(Exit.isFailure(exit) && JSON.stringify(exit.cause).includes("NonFiniteLoss")).toBe(true)
      expect(state.optimizer.step).toBe(0)
      expect(state.params.layers[0].gate.w.isDisposed).toBe(false)
    }))

  it.effect("training 3 + 3 steps from a saved state equals 6 steps, bit for bit", () =>
    Effect.gen(function*() {
      const straight = yield* run(initTrainer(initParams(config, 4), config, 5), 6)
      const half = yield* run(initTrainer(initParams(config, 4), config, 5), 3)
      // Round-trip the state through plain arrays, as a checkpoint would.
      const copy = (t: tf.Tensor) => tf.tensor(t.dataSync().slice(), t.shape)
      const restored: TrainerState = {
        params: { ...half.state.params },
        optimizer: { step: half.state.optimizer.step, m: half.state.optimizer.m.map(copy), v: half.state.optimizer.v.map(copy) },
        cursor: JSON.parse(JSON.stringify(half.state.cursor))
      }
      const resumed = yield* run(restored, 3)
      expect(resumed.losses).toEqual(straight.losses.slice(3))
      expect(Array.from(resumed.state.params.layers[1].down.w.dataSync())).toEqual(Array.from(straight.state.params.layers[1].down.w.dataSync()))
    }))
})
