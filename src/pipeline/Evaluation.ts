/**
 * The evaluate stage: every evaluation dataset of the plan on its test split, giving the
 * metrics the gates compare with the original model's. Graded datasets decode greedily with
 * the setup's inference engine: tfjs on the model's tensors, or ONNX Runtime on a session
 * built from them once per evaluation (and released after it). Text datasets (perplexity)
 * always run on tfjs.
 */
import { Effect } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import { evaluateDataset, evaluateGraded } from "../eval/Evaluate.ts"
import type { GreedyDecoder } from "../eval/GreedyDecoder.ts"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import { openModelSession } from "../onnx/ModelSession.ts"
import { ortGreedyDecoder } from "../onnx/OrtGenerate.ts"
import type { Dataset } from "../services/Datasets.ts"
import type { ModelState } from "./ModelState.ts"
import type { DatasetScore } from "../io/RunEvent.ts"

export interface EvaluationSetup {
  readonly tokenizer: Tokenizer
  readonly datasets: ReadonlyArray<Dataset>
  readonly examples: number
  readonly batchSize: number
  readonly maxSeqLen: number
  /** The engine graded datasets decode with; default tfjs. */
  readonly inference?: InferenceEngine
  /** The device budget evaluation is checked against (DeviceMemory's). */
  readonly room: DeviceRoom
}

export const evaluateModel = (setup: EvaluationSetup, state: ModelState) =>
  Effect.gen(function*() {
    const { config, params } = state.model
    // ONNX Runtime's session, opened on the first graded dataset and shared by the rest.
    let ort: GreedyDecoder | undefined
    const metrics: Record<string, DatasetScore> = {}
    for (const dataset of setup.datasets) {
      if (setup.inference === "ort" && dataset.grader !== undefined && ort === undefined) {
        ort = ortGreedyDecoder(yield* openModelSession(state.model, { logits: "last" }), config)
      }
      const m = ort !== undefined && dataset.grader !== undefined
        ? yield* evaluateGraded(config, ort, setup.tokenizer, dataset, setup)
        : yield* evaluateDataset(config, params, setup.tokenizer, dataset, setup)
      metrics[dataset.name] = {
        examples: m.examples,
        ...(m.accuracy !== undefined ? { accuracy: m.accuracy } : {}),
        ...(m.perplexity !== undefined ? { perplexity: m.perplexity } : {})
      }
    }
    return metrics
  }).pipe(Effect.scoped)
