/**
 * The evaluate stage: every evaluation dataset of the plan on its test split, giving the
 * metrics the gates compare with the original model's, with the setup's inference engine:
 * tfjs on the model's tensors, or ONNX Runtime on sessions built from them. There, graded
 * datasets decode greedily on one session (the LM head at the last position) and text
 * datasets' perplexity comes from another (the `nll` head): each opened once per evaluation,
 * one at a time, and released before the next, so at most one session holds memory.
 */
import { Effect } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import { evaluateDataset, evaluateGraded, evaluateText, type EvalMetrics } from "../eval/Evaluate.ts"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import { openModelSession } from "../onnx/ModelSession.ts"
import { ortGreedyDecoder } from "../onnx/OrtGenerate.ts"
import { ortGroupLoss } from "../onnx/OrtPerplexity.ts"
import type { Dataset } from "../services/Datasets.ts"
import type { ModelState } from "./ModelState.ts"
import type { DatasetScore } from "../io/RunEvent.ts"

export interface EvaluationSetup {
  readonly tokenizer: Tokenizer
  readonly datasets: ReadonlyArray<Dataset>
  readonly examples: number
  readonly batchSize: number
  readonly maxSeqLen: number
  /** The engine graded datasets decode and text datasets are scored with; default tfjs. */
  readonly inference?: InferenceEngine
  /** The device budget evaluation is checked against (DeviceMemory's). */
  readonly room: DeviceRoom
}

/** Metrics of every dataset on ONNX Runtime: the graded ones on one session, then the text ones on another. */
const evaluateOnOrt = (setup: EvaluationSetup, state: ModelState) =>
  Effect.gen(function*() {
    const { config } = state.model
    const graded = setup.datasets.filter((d) => d.grader !== undefined)
    const text = setup.datasets.filter((d) => d.grader === undefined)
    const results = new Map<string, EvalMetrics>()
    if (graded.length > 0) {
      yield* Effect.scoped(Effect.gen(function*() {
        const decoder = ortGreedyDecoder(yield* openModelSession(state.model, { logits: "last" }), config)
        for (const dataset of graded) results.set(dataset.name, yield* evaluateGraded(config, decoder, setup.tokenizer, dataset, setup))
      }))
    }
    if (text.length > 0) {
      yield* Effect.scoped(Effect.gen(function*() {
        const loss = ortGroupLoss(yield* openModelSession(state.model, { head: "nll" }), config)
        for (const dataset of text) results.set(dataset.name, yield* evaluateText(config, loss, setup.tokenizer, dataset, setup))
      }))
    }
    return setup.datasets.map((d) => results.get(d.name)!)
  })

export const evaluateModel = (setup: EvaluationSetup, state: ModelState) =>
  Effect.gen(function*() {
    const { config, params } = state.model
    const all = setup.inference === "ort"
      ? yield* evaluateOnOrt(setup, state)
      : yield* Effect.forEach(setup.datasets, (dataset) => evaluateDataset(config, params, setup.tokenizer, dataset, setup))
    const metrics: Record<string, DatasetScore> = {}
    for (const m of all) {
      metrics[m.dataset] = {
        examples: m.examples,
        ...(m.accuracy !== undefined ? { accuracy: m.accuracy } : {}),
        ...(m.perplexity !== undefined ? { perplexity: m.perplexity } : {})
      }
    }
    return metrics
  })
