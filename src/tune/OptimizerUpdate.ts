/**
 * One optimizer update from a loss's gradients, whatever the loss: clipping by global norm,
 * the scheduled learning rate, AdamW. Shared by the tuners whose losses are not the plain
 * next-token loss (GRPO, distillation).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { assembleParams, type Params, paramSpecs, paramTensors } from "../model/Params.ts"
import { type AdamWOptions, type AdamWState, adamWStep } from "./AdamW.ts"
import { clipByGlobalNorm } from "./ClipGrad.ts"
import { learningRate, type LrSchedule } from "./Schedule.ts"

export interface UpdateOptions {
  readonly schedule: LrSchedule
  readonly optimizer: AdamWOptions
  /** Clip the global gradient norm to this; Infinity disables clipping. */
  readonly maxGradNorm: number
}

export interface OptimizerUpdate {
  readonly params: Params
  readonly optimizer: AdamWState
  /** The learning rate the update used. */
  readonly lr: number
  /** The gradients' global norm before clipping. */
  readonly gradNorm: number
}

/**
 * The weights after one update with `grads` (paramSpecs order). Consumes the gradients, the
 * old weights and the old moments.
 */
export const optimizerUpdate = (
  config: ModelConfig,
  params: Params,
  optimizer: AdamWState,
  grads: ReadonlyArray<tf.Tensor>,
  options: UpdateOptions
): Effect.Effect<OptimizerUpdate> => Effect.gen(function*() {
  const clipped = yield* clipByGlobalNorm(grads, options.maxGradNorm)
  tf.dispose([...grads])
  const lr = learningRate(options.schedule, optimizer.step)
  const oldParams = paramTensors(config, params)
  const updated = adamWStep(options.optimizer, optimizer, oldParams, clipped.grads, lr)
  tf.dispose([...clipped.grads, ...oldParams])
  const names = paramSpecs(config).map((spec) => spec.name)
  const byName = new Map(names.map((name, i) => [name, updated.params[i]]))
  return { params: assembleParams(config, (name) => byName.get(name)!), optimizer: updated.state, lr, gradNorm: clipped.norm }
})
