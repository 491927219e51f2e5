/**
 * The evaluate stage: every evaluation dataset of the plan on its test split, giving the
 * metrics the gates compare with the original model's, with the setup's inference engine:
 * tfjs on the model's tensors, or ONNX Runtime on sessions built from them. There, graded
 * datasets decode greedily on one session (the LM head at the last position) and text
 * datasets' perplexity comes from another (the `nll` head): each opened once per evaluation,
 * one at a time, and released before the next, so at most one session holds memory.
 */
import { Effect, type Scope } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import { evaluateDataset, evaluateGraded, evaluateText, type EvalMetrics } from "../eval/Evaluate.ts"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import type { MemoryBudgetExceeded } from "../model/Footprint.ts"
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
    // One session for `datasets`, opened only when there are any and released after them.
    const onSession = <S, E>(
      datasets: ReadonlyArray<Dataset>,
      open: Effect.Effect<S, E, Scope.Scope>,
      evaluate: (session: S, dataset: Dataset) => Effect.Effect<EvalMetrics, MemoryBudgetExceeded>
    ) =>
      datasets.length === 0
        ? Effect.succeed([])
        : Effect.scoped(Effect.flatMap(open, (session) => Effect.forEach(datasets, (dataset) => evaluate(session, dataset))))
    const graded = yield* onSession(
      setup.datasets.filter((d) => d.grader !== undefined),
      Effect.map(openModelSession(state.model, { logits: "last" }), (session) => ortGreedyDecoder(session, config)),
      (decoder, dataset) => evaluateGraded(config, decoder, setup.tokenizer, dataset, setup)
    )
    const text = yield* onSession(
      setup.datasets.filter((d) => d.grader === undefined),
      Effect.map(openModelSession(state.model, { head: "nll" }), (session) => ortGroupLoss(session, config)),
      (loss, dataset) => evaluateText(config, loss, setup.tokenizer, dataset, setup)
    )
    const results = new Map([...graded, ...text].map((m) => [m.dataset, m]))
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
