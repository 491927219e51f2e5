/**
 * Test helpers: switch the global tfjs backend through the live Compute layer (so tests
 * exercise the same initialisation as the CLI, wasm kernels included), and tiny configs.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { type BackendName, selectBackend } from "../../src/compute/Backend.ts"
import { type ModelConfig, uniformConfig } from "../../src/model/ModelConfig.ts"
import { readFloats } from "../../src/model/Read.ts"
import type { Plan } from "../../src/pipeline/Plan.ts"
import { Compute } from "../../src/services/Compute.ts"
import { Gradients } from "../../src/services/Gradients.ts"
import { RewardModel } from "../../src/services/RewardModel.ts"

export const useBackend = (backend: BackendName): Promise<void> =>
  Effect.runPromise(selectBackend(backend).pipe(Effect.asVoid))

/** Runs fn on each backend in turn and returns what it produced on each. */
export const onBackends = async <A>(backends: ReadonlyArray<BackendName>, fn: () => A | Promise<A>): Promise<Array<A>> => {
  const results: Array<A> = []
  for (const backend of backends) {
    await useBackend(backend)
    results.push(await fn())
  }
  return results
}

export const tinyConfig = (overrides: Partial<ModelConfig> = {}, layer: Partial<{
  numLayers: number
  intermediateSize: number
  numHeads: number
  numKeyValueHeads: number
}> = {}): ModelConfig => ({
  ...uniformConfig({
    architecture: "llama",
    vocabSize: 17,
    hiddenSize: 16,
    headDim: 4,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositionEmbeddings: 64,
    tieWordEmbeddings: false,
    qkvBias: false,
    outputBias: false,
    mlpBias: false
  }, { numLayers: 2, intermediateSize: 24, numHeads: 4, numKeyValueHeads: 2, ...layer }),
  ...overrides
})

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`)
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]))
  return max
}

/** max |a − b| relative to the largest |a| (at least 1e-3): the tolerance of gradients, whose scale varies by parameter. */
export const relativeDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let scale = 1e-3
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]))
  return maxAbsDiff(a, b) / scale
}

/** The values of each tensor, read asynchronously (webgpu has no synchronous read); disposed when `dispose` is set. */
export const readAll = (tensors: ReadonlyArray<tf.Tensor>, dispose = false): Promise<Array<Float32Array>> =>
  Effect.runPromise(Effect.forEach(tensors, (t) => readFloats(t, dispose)))

export const numTensors = () => tf.memory().numTensors

/** Compute for whatever backend the test selected (useBackend), without switching it. */
export const currentCompute = Layer.sync(Compute, () =>
  Compute.of({ backend: tf.getBackend() as BackendName, description: `${tf.getBackend()} (test)` }))

/** Gradients computed in the test's thread on the test's backend. */
export const localGradients = Gradients.layerLocal.pipe(Layer.provide(currentCompute))

/** The reward a plan names (GRPO's), on the test's backend; none when it names none. */
export const planReward = (plan: Plan) => RewardModel.layer(plan.reward ?? []).pipe(Layer.provide(currentCompute))
