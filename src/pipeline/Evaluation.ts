/**
 * The evaluate stage: every evaluation dataset of the plan on its test split, giving the
 * metrics the gates compare with the original model's.
 */
import { Effect } from "effect"
import { evaluateDataset } from "../eval/Evaluate.ts"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { Dataset } from "../services/Datasets.ts"
import type { ModelState } from "./ModelState.ts"
import type { DatasetScore } from "../io/RunEvent.ts"

export interface EvaluationSetup {
  readonly tokenizer: Tokenizer
  readonly datasets: ReadonlyArray<Dataset>
  readonly examples: number
  readonly batchSize: number
  readonly maxSeqLen: number
}

export const evaluateModel = (setup: EvaluationSetup, state: ModelState) =>
  Effect.gen(function*() {
    const metrics: Record<string, DatasetScore> = {}
    for (const dataset of setup.datasets) {
      const m = yield* evaluateDataset(state.model.config, state.model.params, setup.tokenizer, dataset, setup)
      metrics[dataset.name] = {
        examples: m.examples,
        ...(m.accuracy !== undefined ? { accuracy: m.accuracy } : {}),
        ...(m.perplexity !== undefined ? { perplexity: m.perplexity } : {})
      }
    }
    return metrics
  })

