/**
 * The trainer behind continual pre-training and SFT: next-token loss, AdamW, warmup + cosine
 * learning rate, clipping by global norm and gradient accumulation.
 *
 * A step is a pure function of the trainer state (weights, optimizer moments and step, data
 * cursor with its generator state) and the data, so a run saved after any step and resumed
 * replays exactly. The step consumes its input state: the old weights and moments are
 * released once the new ones exist.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import type { GradientsFailed, TokenBatch } from "../model/Gradients.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { type Params, paramTensors } from "../model/Params.ts"
import { type AdamWOptions, type AdamWState, initAdamW } from "./AdamW.ts"
import type { TokenizedExample } from "../tasks/Encode.ts"
import { buildBatch, type DataCursor, startCursor, takeExamples } from "./Batches.ts"
import { Gradients } from "../services/Gradients.ts"
import { optimizerUpdate } from "./OptimizerUpdate.ts"
import type { LrSchedule } from "./Schedule.ts"

export interface TrainOptions {
  readonly schedule: LrSchedule
  readonly optimizer: AdamWOptions
  /** Clip the global gradient norm to this; Infinity disables clipping. */
  readonly maxGradNorm: number
  /** Examples per micro-batch. */
  readonly batchSize: number
  /** Micro-batches per optimizer update. */
  readonly accumulation: number
  /** Longest sequence; batches are as long as their longest example up to this. */
  readonly seqLen: number
  readonly padId: number
  /** SFT: only completion tokens are targets. Continual pre-training: every token. */
  readonly promptMasked: boolean
}

export interface TrainerState {
  readonly params: Params
  readonly optimizer: AdamWState
  readonly cursor: DataCursor
}

export interface StepReport {
  /** Optimizer step just taken (1-based). */
  readonly step: number
  readonly loss: number
  readonly lr: number
  readonly gradNorm: number
  /** Targets that counted in this update. */
  readonly targets: number
}

export class NonFiniteLoss extends Schema.TaggedError<NonFiniteLoss>()("NonFiniteLoss", {
  step: Schema.Number,
  loss: Schema.Number,
  message: Schema.String
}) {}

export const initTrainer = (params: Params, config: ModelConfig, seed: number): TrainerState => ({
  params,
  optimizer: initAdamW(paramTensors(config, params)),
  cursor: startCursor(seed)
})

/** The optimizer after an update: new weights and moments (the old ones are released). */
export interface Update {
  readonly params: Params
  readonly optimizer: AdamWState
  readonly report: StepReport
}

/**
 * One optimizer update from already-built micro-batches: gradients of each (weighted by its
 * counted targets, so accumulation equals one large batch), clipping, AdamW. Fails, changing
 * nothing, on a NaN/Inf loss. On success the old weights and moments are disposed.
 */
export const applyUpdate = (
  config: ModelConfig,
  params: Params,
  optimizer: AdamWState,
  microBatches: ReadonlyArray<TokenBatch>,
  options: Pick<TrainOptions, "schedule" | "optimizer" | "maxGradNorm">
): Effect.Effect<Update, GradientsFailed | NonFiniteLoss, Gradients> =>
  Effect.gen(function*() {
    const gradients = yield* Gradients
    let lossSum = 0
    let targets = 0
    let sum: Array<tf.Tensor> | undefined
    for (const batch of microBatches) {
      // Kernels run synchronously; yielding to the event loop lets SIGTERM/SIGINT interrupt
      // the run between micro-batches instead of minutes later.
      yield* Effect.yieldNow
      const result = yield* gradients.lossAndGradients(config, params, batch)
      lossSum += result.loss * result.targets
      targets += result.targets
      const previous = sum
      sum = tf.tidy(() => result.grads.map((g, i) => previous === undefined ? tf.mul(g, result.targets) : tf.add(previous[i], tf.mul(g, result.targets))))
      tf.dispose([...result.grads, ...(previous ?? [])])
    }
    const accumulated = sum ?? []
    const loss = lossSum / Math.max(targets, 1)
    const step = optimizer.step + 1
    if (!Number.isFinite(loss)) {
      tf.dispose(accumulated)
      return yield* new NonFiniteLoss({
        step,
        loss,
        message: `Training loss became ${loss} at step ${step}; the weights of the previous step are kept. ` +
          "Lower the learning rate, or check the data and the model for NaN/Inf values."
      })
    }
    const averaged = tf.tidy(() => accumulated.map((g) => tf.div(g, Math.max(targets, 1))))
    tf.dispose(accumulated)
    const updated = yield* optimizerUpdate(config, params, optimizer, averaged, options)
    return {
      params: updated.params,
      optimizer: updated.optimizer,
      report: { step, loss, lr: updated.lr, gradNorm: updated.gradNorm, targets }
    }
  })

/**
 * One optimizer update over the next `accumulation` micro-batches of `data` from the state's
 * cursor. Fails, changing nothing, on a NaN/Inf loss.
 */
export const trainStep = (
  config: ModelConfig,
  state: TrainerState,
  data: ReadonlyArray<TokenizedExample>,
  options: TrainOptions
): Effect.Effect<{ state: TrainerState; report: StepReport }, GradientsFailed | NonFiniteLoss, Gradients> =>
  Effect.gen(function*() {
    let cursor = state.cursor
    const microBatches: Array<TokenBatch> = []
    for (let micro = 0; micro < options.accumulation; micro++) {
      const taken = takeExamples(data, cursor, options.batchSize)
      cursor = taken.cursor
      microBatches.push(buildBatch(taken.batch, options.seqLen, options.padId, options.promptMasked))
    }
    const update = yield* applyUpdate(config, state.params, state.optimizer, microBatches, options)
    return { state: { params: update.params, optimizer: update.optimizer, cursor }, report: update.report }
  }).pipe(Effect.withSpan("Trainer.step"))
