/**
 * Where calibration data comes from: the `calibration` split of a dataset (a built-in task or a
 * JSONL file, through the Datasets service), encoded with the model's tokenizer. The contrastive
 * scorer also reads general text, by default the built-in `general` task.
 */
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import { type DatasetError, type DatasetRef, Datasets, describeRef } from "../services/Datasets.ts"
import { calibrationBatches, type CalibrationOptions } from "./Calibration.ts"
import { InvalidPruneRequest } from "./Errors.ts"
import { contrastiveDefaults } from "./NeuronScorers.ts"
import { type CalibrationData, needsCalibration, needsGeneralText } from "./Scorers.ts"

export interface CalibrationRequest extends CalibrationOptions {
  /** Task data. */
  readonly task: DatasetRef
  /** Task examples; default 64 (10 for contrastive, the reference's count). */
  readonly examples?: number
  /** General text for the contrastive scorer; default the built-in `general` task. */
  readonly general?: DatasetRef
  /** General examples; default 1000 (the reference's count). */
  readonly generalExamples?: number
}

export const defaultCalibrationExamples = 64

/** `count` calibration examples of a dataset as batches; fails when the split has none. */
export const loadCalibrationBatches = Effect.fn("Calibration.load")(function*(
  tokenizer: Tokenizer,
  ref: DatasetRef,
  count: number,
  options: CalibrationOptions
) {
  const examples = yield* (yield* Datasets).take(ref, "calibration", Math.max(0, count))
  if (examples.length === 0) {
    return yield* new InvalidPruneRequest({
      message: `The calibration split of ${describeRef(ref)} has no examples (JSONL files give 10% of their lines, ` +
        `chosen by prompt hash, to it), so there is nothing to score the model on.`
    })
  }
  // Every example loaded here is used (the counts are the scorer's), so batching by length is safe.
  return calibrationBatches(tokenizer, examples, { ...options, sortByLength: true })
})

/** The calibration data the named scorer reads (none for `random`). */
export const loadCalibration = (
  tokenizer: Tokenizer,
  scorer: string,
  request: CalibrationRequest
): Effect.Effect<CalibrationData, DatasetError | InvalidPruneRequest, Datasets> =>
  Effect.gen(function*() {
    if (!needsCalibration(scorer)) return { task: [] }
    const contrastive = needsGeneralText(scorer)
    const examples = request.examples ?? (contrastive ? contrastiveDefaults.taskSamples : defaultCalibrationExamples)
    const task = yield* loadCalibrationBatches(tokenizer, request.task, examples, request)
    if (!contrastive) return { task }
    const general = yield* loadCalibrationBatches(
      tokenizer,
      request.general ?? { task: "general" },
      request.generalExamples ?? contrastiveDefaults.generalSamples,
      request
    )
    return { task, general }
  })
