/**
 * The prune stage of the loop: score the accepted model's units on calibration data, keep the
 * highest-scoring ones (uniformly per layer unless the plan asks for global allocation) and
 * cut the rest, leaving the accepted model intact for a rollback.
 */
import type { InferenceEngine } from "../compute/Inference.ts"
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import { calibrationBatchesOf } from "../prune/CalibrationSource.ts"
import type { InvalidPruneRequest } from "../prune/Errors.ts"
import { planFor } from "../prune/Prune.ts"
import { type CalibrationData, scoreModel } from "../prune/Scorers.ts"
import { applyPlan } from "../prune/Surgery.ts"
import type { Dataset } from "../services/Datasets.ts"
import type { PruneFn } from "./Loop.ts"
import { type Plan, planSeqLen, scorerFor } from "./Plan.ts"
import { calibrationBatchSize } from "./PlanFootprint.ts"

/** Calibration batches: the plan's calibration datasets (calibration split) and its general text. */
export const calibrationData = (
  plan: Plan,
  tokenizer: Tokenizer,
  calibration: ReadonlyArray<Dataset>,
  general: Dataset
): Effect.Effect<CalibrationData, InvalidPruneRequest> =>
  Effect.gen(function*() {
    const options = { batchSize: calibrationBatchSize, maxSeqLen: planSeqLen(plan) }
    return {
      task: yield* calibrationBatchesOf(tokenizer, calibration, plan.data.calibrationExamples, options),
      general: yield* calibrationBatchesOf(tokenizer, [general], plan.data.calibrationExamples, options)
    }
  })

/** Scores on `inference` where the scorer has an ONNX Runtime pass (Scorers.ts), else on tfjs. */
export const makePruneFn = (plan: Plan, data: CalibrationData, room: DeviceRoom, inference: InferenceEngine = "tfjs"): PruneFn<Effect.Error<ReturnType<typeof applyPlan>> | Effect.Error<ReturnType<typeof scoreModel>>, never> =>
  (model, unit, keep, iteration) =>
    Effect.gen(function*() {
      const scores = yield* scoreModel(model.config, model.params, room, unit, scorerFor(plan, unit), data, { seed: plan.seed * 1009 + iteration, inference })
      return yield* applyPlan(model.config, model.params, planFor(scores, keep, plan.allocation), { keepOriginal: true })
    })
