/**
 * One distillation step: the next batch of the tuning examples from the data cursor, the
 * teacher's next-token distributions over it (computed on the fly: each example is seen about
 * once per tuning, so a cache would cost the same teacher passes plus the memory), the
 * distillation loss and one optimizer update.
 *
 * A function of its state (weights, optimizer moments, data cursor), so a tuning saved after any
 * step and resumed replays exactly; it consumes the input state when it succeeds and leaves it as
 * it was when the loss is NaN.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import type { TokenizedExample } from "../tasks/Encode.ts"
import type { AdamWState } from "./AdamW.ts"
import { buildBatch, type DataCursor, takeExamples } from "./Batches.ts"
import { distillLossAndGradients, type DistillOptions } from "./DistillLoss.ts"
import { optimizerUpdate, type UpdateOptions } from "./OptimizerUpdate.ts"
import type { Teacher } from "./Teacher.ts"
import { NonFiniteLoss } from "./Trainer.ts"

export interface DistillSettings extends DistillOptions {
  readonly batchSize: number
  readonly seqLen: number
  readonly padId: number
  /** Count completion tokens only (prompt-completion data); plain text counts every token. */
  readonly promptMasked: boolean
  readonly update: UpdateOptions
}

export interface DistillState {
  readonly params: Params
  readonly optimizer: AdamWState
  readonly cursor: DataCursor
}

export interface DistillReport {
  readonly loss: number
  /** Target tokens that counted. */
  readonly tokens: number
  /** kl, crossEntropy, lr, gradNorm, teacherSeconds (the teacher's share of the step). */
  readonly metrics: Readonly<Record<string, number>>
}

export const distillStep = (
  config: ModelConfig,
  state: DistillState,
  data: ReadonlyArray<TokenizedExample>,
  teacher: Teacher,
  settings: DistillSettings
): Effect.Effect<{ readonly state: DistillState; readonly report: DistillReport }, NonFiniteLoss> =>
  Effect.gen(function*() {
    const taken = takeExamples(data, state.cursor, settings.batchSize)
    const batch = buildBatch(taken.batch, settings.seqLen, settings.padId, settings.promptMasked)
    const started = performance.now()
    const target = yield* teacher.logProbs(batch, settings.temperature)
    const teacherSeconds = (performance.now() - started) / 1000
    const result = yield* distillLossAndGradients(config, state.params, batch, target, settings).pipe(
      Effect.ensuring(Effect.sync(() => target.dispose()))
    )
    if (!Number.isFinite(result.loss)) {
      tf.dispose(result.grads)
      const step = state.optimizer.step + 1
      return yield* Effect.fail(
        new NonFiniteLoss({
          step,
          loss: result.loss,
          message: `The distillation loss became ${result.loss} at step ${step}; the weights of the previous step are kept. ` +
            "Lower the learning rate, or check the teacher and the data for NaN/Inf values."
        })
      )
    }
    const update = yield* optimizerUpdate(config, state.params, state.optimizer, result.grads, settings.update)
    return {
      state: { params: update.params, optimizer: update.optimizer, cursor: taken.cursor },
      report: {
        loss: result.loss,
        tokens: result.targets,
        metrics: { kl: result.kl, crossEntropy: result.crossEntropy, lr: update.lr, gradNorm: update.gradNorm, teacherSeconds }
      }
    }
  }).pipe(Effect.withSpan("Distill.step"))
