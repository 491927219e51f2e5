/**
 * The webgpu backend (tfjs' WGSL kernels; Mesa's lavapipe in CI) against the cpu backend on what
 * the Prune-Tune Loop computes beyond a plain forward and its gradients (test/model/Backends.test.ts)
 * and attention (Attention.test.ts): KV-cache decoding (whole model and block by block), every
 * data-driven scorer, surgery, the distillation, GRPO and LoRA gradients, and SFT and LoRA tuner
 * steps with clipping and AdamW. Without a WebGPU adapter useBackend fails, so this file fails
 * rather than skips. Models are tiny: lavapipe runs at 1-2 GFLOP/s.
 *
 * Tolerances as Backends.test.ts: float32 sums in another order give ~1e-7; logits within 1e-4
 * absolute, gradients within 1e-4 relative to the largest entry; a wrong kernel gives order 1.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import { adapterGradients, blockwiseAdapterGradients, disposeAdapters } from "../../src/model/Adapters.ts"
import { lossBatch } from "../../src/model/Blockwise.ts"
import { generateBlockwise } from "../../src/model/BlockwiseGenerate.ts"
import { disposeParams, initParams, paramTensors } from "../../src/model/Params.ts"
import { Rng } from "../../src/model/Rng.ts"
import { emptyCache, forward } from "../../src/model/Transformer.ts"
import { residentSource } from "../../src/model/WeightSource.ts"
import { scoreModel, scorersFor } from "../../src/prune/Scorers.ts"
import { scoreVectors, units } from "../../src/prune/Scores.ts"
import { applyPlan, type KeepPlan } from "../../src/prune/Surgery.ts"
import { disposeAdamW } from "../../src/tune/AdamW.ts"
import { adapterTuner } from "../../src/tune/AdapterTuning.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { distillLossAndGradients, teacherLogProbs } from "../../src/tune/DistillLoss.ts"
import { buildRolloutBatch, grpoLossAndGradients, sequenceLogProbs } from "../../src/tune/GrpoLoss.ts"
import { sampleRollouts, tfjsRolloutDecoder } from "../../src/tune/Rollouts.ts"
import { SftConfig } from "../../src/tune/Sft.ts"
import { initTrainer, trainStep } from "../../src/tune/Trainer.ts"
import { localGradients, maxAbsDiff, numTensors, onBackends, readAll, relativeDiff, tinyConfig } from "../helpers/backend.ts"
import { unlimitedRoom } from "../helpers/room.ts"
import { liveAdapters } from "../model/_support.ts"
import { randomBatches } from "../prune/_support.ts"
import { arithContext, batchOf, fixedRolloutBatch, grpoPrompts, toyData, toyOptions } from "../tune/_support.ts"

/** fn's result on cpu and on webgpu; fn must release every tensor it makes (checked on both). */
const onCpuAndGpu = async <A>(fn: () => Promise<A>): Promise<[A, A]> => {
  const [cpu, gpu] = await onBackends(["cpu", "webgpu"], async () => {
    const before = numTensors()
    const result = await fn()
    expect(numTensors(), `tensors left on ${tf.getBackend()}`).toBe(before)
    return result
  })
  return [cpu, gpu]
}

/** Each webgpu gradient within 1e-4 of cpu's, relative to cpu's largest entry. */
const expectGradients = (cpu: ReadonlyArray<Float32Array>, gpu: ReadonlyArray<Float32Array>, label: string) => {
  expect(gpu).toHaveLength(cpu.length)
  cpu.forEach((g, i) => expect(relativeDiff(g, gpu[i]), `${label}: gradient ${i}`).toBeLessThan(1e-4))
}

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(Effect.orDie(effect))

const config = tinyConfig()
const qwen = tinyConfig({ architecture: "qwen2", tieWordEmbeddings: true, qkvBias: true }, { numLayers: 3 })

describe("KV-cache decoding on webgpu", () => {
  // Left-padded prompts as decoding sees them: a forward over the first slots, then one slot per step.
  const padding = [0, 3, 5]
  const L = 10
  const ids = padding.map((pad, b) => Array.from({ length: L }, (_, t) => (t < pad ? 0 : 1 + ((b * 5 + t * 3) % 16))))

  it("gives the logits of a full forward, and cpu's, at every real position", async () => {
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const params = initParams(config, 3, 0.5)
      const [full, cached] = tf.tidy(() => {
        const x = tf.tensor2d(ids.flat(), [ids.length, L], "int32")
        let cache = emptyCache(padding)
        const parts: Array<tf.Tensor> = []
        for (let start = 0, end = 6; start < L; start = end, end = start + 1) {
          const out = forward(config, params, tf.slice(x, [0, start], [ids.length, end - start]), { cache })
          parts.push(out.logits)
          cache = out.cache!
        }
        return [forward(config, params, x, { padding }).logits, tf.concat(parts, 1)]
      })
      disposeParams(config, params)
      // Padding slots attend to nothing real: only real positions count.
      const real = (values: Float32Array) =>
        padding.flatMap((pad, b) => Array.from(values.subarray((b * L + pad) * config.vocabSize, (b + 1) * L * config.vocabSize)))
      const [f, c] = await readAll([full, cached], true)
      return { full: real(f), cached: real(c) }
    })
    expect(maxAbsDiff(gpu.cached, gpu.full)).toBeLessThan(1e-4)
    expect(maxAbsDiff(gpu.cached, cpu.full)).toBeLessThan(1e-4)
    expect(maxAbsDiff(gpu.full, cpu.full)).toBeLessThan(1e-4)
  })

  it("samples cpu's rollouts, with the log-probs a full forward gives", async () => {
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const params = initParams(config, 5, 0.5)
      const sampling = { rollouts: 3, temperature: 0.7, topP: 0.9, maxNewTokens: 6, stopTokens: [2] }
      const rollouts = await run(sampleRollouts(tfjsRolloutDecoder({ config, params }), grpoPrompts, sampling, Rng.seeded(4)))
      const batch = buildRolloutBatch(grpoPrompts, rollouts, rollouts.map(() => 0), 0)
      const full = await run(sequenceLogProbs(config, params, batch, sampling.temperature))
      disposeParams(config, params)
      return { completions: rollouts.map((r) => r.completion), decoded: batch.oldLogProbs, full }
    })
    expect(gpu.completions).toEqual(cpu.completions)
    expect(maxAbsDiff(gpu.decoded, gpu.full)).toBeLessThan(2e-5)
    expect(maxAbsDiff(gpu.decoded, cpu.decoded)).toBeLessThan(1e-4)
  })

  // Tokens only (its logits stay inside): this catches a kernel that fails or is wrong, not a small drift.
  it("block by block (the large-model path) generates cpu's tokens, greedy and sampled", async () => {
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const params = initParams(config, 9, 0.5)
      const tokens: Array<Array<number>> = []
      for (const options of [{ temperature: 0, topP: 1 }, { temperature: 1, topP: 0.9, seed: 3 }]) {
        tokens.push(await run(generateBlockwise(residentSource(config, params, unlimitedRoom), [3, 16, 5, 1, 2], { ...options, maxNewTokens: 6 })))
      }
      disposeParams(config, params)
      return tokens
    })
    expect(gpu).toEqual(cpu)
  })
})

describe("scorers on webgpu rank as on cpu", () => {
  const scorerConfig = tinyConfig({}, { numLayers: 3 })
  const task = randomBatches(scorerConfig.vocabSize, { sequences: 8, batchSize: 4, minLen: 3, maxLen: 10, seed: 1 })
  const general = randomBatches(scorerConfig.vocabSize, { sequences: 8, batchSize: 8, minLen: 3, maxLen: 10, seed: 2 })
  // Every data-driven scorer the registry lists (random reads no tensor).
  const scorers = units.flatMap((unit) => scorersFor[unit].filter((s) => s !== "random").map((scorer) => [unit, scorer] as const))

  it.each(scorers)("%s: %s", async (unit, scorer) => {
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const params = initParams(scorerConfig, 10, 0.3)
      const scores = await run(scoreModel(scorerConfig, params, unlimitedRoom, unit, scorer, { task, general }))
      disposeParams(scorerConfig, params)
      return scoreVectors(scores)
    })
    cpu.forEach((expected, v) => {
      const actual = gpu[v]
      const scale = Math.max(...Array.from(expected, Math.abs))
      expect(scale, "scores that are all zero compare nothing").toBeGreaterThan(0)
      // Selection reads the ranking: within 1e-4 of the largest score, every pair of units more
      // than 2e-4 apart keeps its order (contrastive's frequencies come out equal).
      expect(maxAbsDiff(actual, expected) / scale, `vector ${v}`).toBeLessThan(1e-4)
    })
  })
})

describe("surgery on webgpu", () => {
  const all = (n: number) => Array.from({ length: n }, (_, i) => i)
  const plans: ReadonlyArray<KeepPlan> = [
    { unit: "neurons", keep: [[0, 2, 5, 7, 11, 23], all(24), [20, 3, 1]] },
    { unit: "heads", keep: [[1], [0, 1], [0]] },
    { unit: "layers", keep: [0, 2] }
  ]

  it.each(plans)("keeps exactly cpu's weights and logits ($unit)", async (plan) => {
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const pruned = await run(applyPlan(qwen, initParams(qwen, 1, 0.3), plan))
      const logits = tf.tidy(() => forward(pruned.config, pruned.params, tf.tensor2d([[1, 5, 9, 2, 14, 3, 7]], undefined, "int32")).logits)
      const [values, ...weights] = await readAll([logits, ...paramTensors(pruned.config, pruned.params)])
      logits.dispose()
      disposeParams(pruned.config, pruned.params)
      return { config: pruned.config, logits: values, weights }
    })
    expect(gpu.config).toEqual(cpu.config)
    // A gather copies: the kept weights are the same floats.
    expect(gpu.weights).toEqual(cpu.weights)
    expect(maxAbsDiff(gpu.logits, cpu.logits)).toBeLessThan(1e-4)
  })
})

describe("tuning gradients on webgpu equal cpu's", () => {
  it("distillation: loss, KL, cross-entropy and every gradient", async () => {
    const batch = batchOf(config.vocabSize, 3, 7, 2)
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const teacher = initParams(config, 2, 0.5)
      const student = initParams(config, 9, 0.5)
      const target = teacherLogProbs(config, teacher, batch, 2)
      const result = await run(distillLossAndGradients(config, student, batch, target, { temperature: 2, alpha: 0.3 }))
      target.dispose()
      disposeParams(config, teacher)
      disposeParams(config, student)
      return { measured: [result.loss, result.kl, result.crossEntropy], grads: await readAll(result.grads, true) }
    })
    expect(maxAbsDiff(gpu.measured, cpu.measured)).toBeLessThan(1e-5)
    expect(cpu.measured[1]).toBeGreaterThan(1e-2) // a KL that carries a gradient
    expectGradients(cpu.grads, gpu.grads, "distillation")
  })

  it("GRPO: reference log-probs, loss, KL, clipped share and every gradient", async () => {
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const params = initParams(config, 5, 0.5)
      // Built on each backend from its own log-probs: ratios stay e^{±0.5}, far from the clip edges.
      const { batch, ref } = await fixedRolloutBatch(config, params)
      const result = await run(grpoLossAndGradients(config, params, batch, ref, { clip: 0.2, klCoef: 1, temperature: 1 }))
      disposeParams(config, params)
      return { ref, measured: [result.loss, result.kl, result.clipFraction], grads: await readAll(result.grads, true) }
    })
    expect(maxAbsDiff(gpu.ref, cpu.ref)).toBeLessThan(1e-4)
    expect(maxAbsDiff(gpu.measured, cpu.measured)).toBeLessThan(1e-5)
    expect(cpu.measured[2]).toBeGreaterThan(0)
    expectGradients(cpu.grads, gpu.grads, "GRPO")
  })

  it("LoRA adapters: whole-graph and block-by-block gradients", async () => {
    const adapterConfig = tinyConfig({ architecture: "qwen2", vocabSize: 29, tieWordEmbeddings: true, qkvBias: true }, { numLayers: 2 })
    const spec = { rank: 3, alpha: 6, targets: ["q", "k", "v", "o", "gate", "up", "down"] as const }
    const [batch] = randomBatches(29, { sequences: 3, batchSize: 3, minLen: 4, maxLen: 9, seed: 2 })
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const params = initParams(adapterConfig, 6, 0.3)
      const adapters = liveAdapters(adapterConfig, spec, 7)
      const whole = await run(adapterGradients(adapterConfig, params, adapters, batch))
      const blockwise = await run(blockwiseAdapterGradients(residentSource(adapterConfig, params, unlimitedRoom), adapters, [lossBatch(batch)]))
      disposeAdapters(adapters)
      disposeParams(adapterConfig, params)
      return {
        losses: [whole.loss, blockwise.losses[0]],
        whole: await readAll(whole.grads, true),
        blockwise: await readAll(blockwise.grads, true)
      }
    })
    expect(maxAbsDiff(gpu.losses, cpu.losses)).toBeLessThan(1e-5)
    expectGradients(cpu.whole, gpu.whole, "whole graph")
    expectGradients(cpu.whole, gpu.blockwise, "block by block")
  })

  it("LoRA tuning: two steps (clipping, AdamW on the adapters) and the merge reach cpu's weights", async () => {
    const tokenizer = baseTokenizer()
    const loraConfig = tinyConfig({ vocabSize: tokenizer.vocabSize }, { intermediateSize: 32 })
    const sft = Schema.decodeUnknownSync(SftConfig)({ kind: "sft", batchSize: 4, lr: 0.01, maxSeqLen: 48, adapter: { rank: 4 } })
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      const original = { config: loraConfig, params: initParams(loraConfig, 3, 0.2) }
      const base = { config: loraConfig, params: initParams(loraConfig, 3, 0.2) }
      const tuned = await run(Effect.scoped(Effect.gen(function*() {
        const session = yield* adapterTuner(sft, sft.adapter!).start(base, arithContext(original, 2, 5))
        const losses = [(yield* session.step).loss, (yield* session.step).loss]
        return { losses, model: yield* session.finish }
      })))
      const weights = await readAll(paramTensors(loraConfig, tuned.model.params))
      disposeParams(loraConfig, tuned.model.params)
      disposeParams(loraConfig, original.params)
      return { losses: tuned.losses, weights }
    })
    expect(maxAbsDiff(gpu.losses, cpu.losses)).toBeLessThan(1e-5)
    cpu.weights.forEach((w, i) => expect(maxAbsDiff(gpu.weights[i], w), `weight ${i}`).toBeLessThan(1e-5))
  })

  it("SFT with AdamW: three steps (masked prompts, clipping, weight decay) reach cpu's weights and moments", async () => {
    const [cpu, gpu] = await onCpuAndGpu(async () => {
      let state = initTrainer(initParams(config, 1), config, 7)
      const reports: Array<number> = []
      for (let step = 0; step < 3; step++) {
        const out = await run(trainStep(config, state, toyData, toyOptions).pipe(Effect.provide(localGradients)))
        reports.push(out.report.loss, out.report.gradNorm)
        state = out.state
      }
      const weights = await readAll(paramTensors(config, state.params))
      const moments = await readAll([...state.optimizer.m, ...state.optimizer.v])
      disposeParams(config, state.params)
      disposeAdamW(state.optimizer)
      return { reports, weights, moments }
    })
    expect(maxAbsDiff(gpu.reports, cpu.reports)).toBeLessThan(1e-5)
    expectGradients(cpu.moments, gpu.moments, "AdamW moments")
    cpu.weights.forEach((w, i) => expect(maxAbsDiff(gpu.weights[i], w), `weight ${i}`).toBeLessThan(1e-5))
  })
})
