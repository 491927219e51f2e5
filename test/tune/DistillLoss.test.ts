/**
 * The distillation loss: KL(teacher ‖ student) against a hand-computed value, 0 with no
 * gradient when the student is the teacher, the SFT loss at α = 1, its gradient against finite
 * differences, and a pruned student whose KL to its unpruned teacher drops under distillation.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { lossAndGradients, type TokenBatch } from "../../src/model/Gradients.ts"
import { assembleParams, initParams, type Params, paramSpecs, paramTensors, disposeParams } from "../../src/model/Params.ts"
import { Rng } from "../../src/model/Rng.ts"
import { removeNeurons } from "../../src/prune/Surgery.ts"
import { defaultAdamW, disposeAdamW, initAdamW } from "../../src/tune/AdamW.ts"
import { startCursor } from "../../src/tune/Batches.ts"
import { type DistillState, distillStep } from "../../src/tune/DistillStep.ts"
import { distillLossAndGradients, distributionKl, teacherLogProbs } from "../../src/tune/DistillLoss.ts"
import { tfjsTeacher } from "../../src/tune/Teacher.ts"
import { maxAbsDiff, numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"
import { batchOf as randomBatch } from "./_support.ts"

const config = tinyConfig()
let teacher: Params
beforeAll(async () => {
  await useBackend("cpu")
  teacher = initParams(config, 2, 0.5)
})

const batchOf = (rows: number, seqLen: number, seed: number, masked = true) => randomBatch(config.vocabSize, rows, seqLen, seed, masked)

const distill = async (student: Params, batch: TokenBatch, options: { temperature: number; alpha: number }) => {
  const target = teacherLogProbs(config, teacher, batch, options.temperature)
  const result = await Effect.runPromise(distillLossAndGradients(config, student, batch, target, options))
  target.dispose()
  return result
}

describe("the distillation loss", () => {
  it("measures KL(teacher ‖ student) of the distributions", () => {
    const t = tf.log(tf.tensor2d([[0.5, 0.5], [0.1, 0.9]])) as tf.Tensor2D
    const s = tf.log(tf.tensor2d([[0.25, 0.75], [0.1, 0.9]])) as tf.Tensor2D
    const kl = distributionKl(t, s)
    expect(maxAbsDiff(kl.dataSync(), [0.5 * Math.log(2) + 0.5 * Math.log(0.5 / 0.75), 0])).toBeLessThan(1e-6)
    tf.dispose([t, s, kl])
  })

  it("is 0 with no gradient when the student is the teacher, at any temperature", async () => {
    const before = numTensors()
    for (const temperature of [1, 2]) {
      const result = await distill(teacher, batchOf(3, 7, 1), { temperature, alpha: 0 })
      expect(Math.abs(result.loss)).toBeLessThan(1e-6)
      expect(Math.abs(result.kl)).toBeLessThan(1e-6)
      for (const g of result.grads) expect(maxAbsDiff(g.dataSync(), new Float32Array(g.size))).toBeLessThan(1e-6)
      tf.dispose(result.grads)
    }
    expect(numTensors()).toBe(before)
  })

  it("is the SFT loss (with its gradient) at α = 1", async () => {
    const student = initParams(config, 9, 0.5)
    const batch = batchOf(3, 7, 2)
    const mixed = await distill(student, batch, { temperature: 2, alpha: 1 })
    const sft = await Effect.runPromise(lossAndGradients(config, student, batch))
    expect(mixed.loss).toBeCloseTo(sft.loss, 5)
    expect(mixed.crossEntropy).toBeCloseTo(sft.loss, 5)
    expect(mixed.targets).toBe(sft.targets)
    expect(Math.max(...mixed.grads.map((g, i) => maxAbsDiff(g.dataSync(), sft.grads[i].dataSync())))).toBeLessThan(1e-5)
    tf.dispose([...mixed.grads, ...sft.grads])
    disposeParams(config, student)
  })

  it("has the gradient central finite differences measure", async () => {
    const student = initParams(config, 9, 0.5)
    const batch = batchOf(2, 6, 3)
    const options = { temperature: 2, alpha: 0.3 }
    const result = await distill(student, batch, options)
    const names = paramSpecs(config).map((s) => s.name)
    const count = paramTensors(config, student).reduce((n, t) => n + t.size, 0)
    const rng = Rng.seeded(5)
    const direction = paramTensors(config, student).map((t) =>
      tf.tensor(Float32Array.from({ length: t.size }, () => rng.normal() / Math.sqrt(count)), t.shape))
    const lossAt = async (h: number) => {
      const tensors = paramTensors(config, student).map((t, i) => tf.add(t, tf.mul(direction[i], h)))
      const r = await distill(assembleParams(config, (name) => tensors[names.indexOf(name)]), batch, options)
      tf.dispose([...r.grads, ...tensors])
      return r.loss
    }
    const h = 1e-3
    const numeric = (await lossAt(h) - await lossAt(-h)) / (2 * h)
    const analytic = direction.reduce((sum, d, i) => sum + tf.tidy(() => tf.sum(tf.mul(d, result.grads[i])).dataSync()[0]), 0)
    expect(Math.abs(numeric - analytic), `${numeric} vs ${analytic}`).toBeLessThan(5e-4 + 2e-3 * Math.abs(analytic))
    tf.dispose([...direction, ...result.grads])
    disposeParams(config, student)
  })

  it.effect("brings a pruned student's distribution back towards its teacher, step by step", () =>
    Effect.gen(function*() {
      // Half of every layer's MLP neurons removed from a copy of the teacher.
      const keep = config.layers.map((l) => Array.from({ length: l.intermediateSize / 2 }, (_, i) => 2 * i))
      const pruned = yield* removeNeurons(config, teacher, keep, { keepOriginal: true })
      const held = batchOf(4, 12, 100, false)
      const klOf = (params: Params) => Effect.gen(function*() {
        const target = teacherLogProbs(config, teacher, held, 1)
        const r = yield* distillLossAndGradients(pruned.config, params, held, target, { temperature: 1, alpha: 0 })
        tf.dispose([target, ...r.grads])
        return r.kl
      })
      const rng = Rng.seeded(7)
      const data = Array.from({ length: 120 }, () => ({ ids: Array.from({ length: 12 }, () => rng.int(config.vocabSize)), promptLength: 0 }))
      const settings = {
        temperature: 1,
        alpha: 0,
        batchSize: 4,
        seqLen: 12,
        padId: 0,
        promptMasked: false,
        update: { schedule: { peakLr: 1e-2, minLr: 1e-2, warmupSteps: 0, totalSteps: 30 }, optimizer: defaultAdamW, maxGradNorm: 1 }
      }
      const before = yield* klOf(pruned.params)
      let state: DistillState = { params: pruned.params, optimizer: initAdamW(paramTensors(pruned.config, pruned.params)), cursor: startCursor(1) }
      const tensors = numTensors()
      for (let step = 0; step < 30; step++) {
        const out = yield* distillStep(pruned.config, state, data, tfjsTeacher({ config, params: teacher }), settings)
        state = out.state
        expect(out.report.metrics.kl).toBeGreaterThan(0)
      }
      expect(numTensors()).toBe(tensors)
      const after = yield* klOf(state.params)
      expect(before).toBeGreaterThan(0.01)
      // Held-out contexts: the student learns the teacher as a function, not the batches it saw.
      expect(after).toBeLessThan(0.7 * before)
      disposeAdamW(state.optimizer)
      disposeParams(pruned.config, state.params)
    }))
})
