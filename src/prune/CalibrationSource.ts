/**
 * Where calibration data comes from: the `calibration` split of a dataset (a built-in task or a
 * JSONL file, through the Datasets service), encoded with the model's tokenizer. The contrastive
 * scorer also reads general text, by default the built-in `general` task.
 */
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import { type Dataset, type DatasetError, type DatasetRef, Datasets } from "../services/Datasets.ts"
import { type CalibrationBatch, calibrationBatches, type CalibrationOptions } from "./Calibration.ts"
import { InvalidPruneRequest } from "./Errors.ts"
import { contrastiveDefaults } from "./NeuronScorers.ts"
import type { CalibrationData, ScorerReads } from "./Scorers.ts"

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

/**
 * The one builder of calibration batches: `count` examples of the calibration split shared by
 * `datasets` (each batched on its own), encoded with the model's tokenizer; fails when a
 * dataset's split has none.
 */
export const calibrationBatchesOf = (
  tokenizer: Tokenizer,
  datasets: ReadonlyArray<Dataset>,
  count: number,
  options: CalibrationOptions
): Effect.Effect<Array<CalibrationBatch>, InvalidPruneRequest> =>
  Effect.forEach(datasets, (dataset) => {
    const examples = dataset.take("calibration", Math.max(1, Math.ceil(count / datasets.length)))
    return examples.length === 0
      ? Effect.fail(new InvalidPruneRequest({
        message: `The calibration split of ${dataset.name} has no examples (JSONL files give 10% of their lines, ` +
          `chosen by prompt hash, to it), so there is nothing to score the model on.`
      }))
      : Effect.succeed(calibrationBatches(tokenizer, examples, options))
  }).pipe(Effect.map((batches) => batches.flat()))

/** `count` calibration examples of a dataset as batches, shortest first; fails when the split has none. */
export const loadCalibrationBatches = Effect.fn("Calibration.load")(function*(
  tokenizer: Tokenizer,
  ref: DatasetRef,
  count: number,
  options: CalibrationOptions
) {
  const dataset = yield* (yield* Datasets).open(ref)
  // Every example loaded here is used (the counts are the scorer's), so batching by length is safe.
  return yield* calibrationBatchesOf(tokenizer, [dataset], count, { ...options, sortByLength: true })
})

/** The calibration data a scorer reads (`scorerReads`): none for `random`. */
export const loadCalibration = (
  tokenizer: Tokenizer,
  reads: ScorerReads,
  request: CalibrationRequest
): Effect.Effect<CalibrationData, DatasetError | InvalidPruneRequest, Datasets> =>
  Effect.gen(function*() {
    if (reads === "nothing") return { task: [] }
    const contrastive = reads === "task and general text"
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
