/**
 * What a tuning trains on: examples drawn from one training chunk of each of the plan's tuning
 * datasets (a fresh chunk every iteration by default, the paper's setting), shared equally.
 */
import { Effect, Schema } from "effect"
import type { Dataset } from "../services/Datasets.ts"
import type { Example } from "../tasks/Task.ts"

/** `count` examples of chunk `chunk`, shared as equally as whole examples allow by the datasets. */
export const drawExamples = (datasets: ReadonlyArray<Dataset>, chunk: number, count: number): Array<Example> =>
  datasets.flatMap((dataset, i) => {
    const share = Math.floor(count / datasets.length) + (i < count % datasets.length ? 1 : 0)
    return [...dataset.chunk(chunk, share)]
  })

/** The tuning data has no training examples at all (e.g. a small JSONL file whose split left none). */
export class NoTrainingData extends Schema.TaggedError<NoTrainingData>()("NoTrainingData", {
  datasets: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** `count` examples of a tuning's chunk (see `drawExamples`), failing with NoTrainingData when there are none. */
export const drawTrainingExamples = (
  context: { readonly datasets: ReadonlyArray<Dataset>; readonly chunk: number },
  count: number
): Effect.Effect<Array<Example>, NoTrainingData> => {
  const examples = drawExamples(context.datasets, context.chunk, count)
  return examples.length > 0 ? Effect.succeed(examples) : Effect.fail(
    new NoTrainingData({
      datasets: context.datasets.map((d) => d.name),
      message: `There is nothing to tune on: the training split of ${context.datasets.map((d) => d.name).join(", ")} ` +
        "is empty (JSONL files give 80% of their lines, chosen by prompt hash, to it). Use a larger file, or `splitBy: none`."
    })
  )
}
