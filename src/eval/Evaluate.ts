/**
 * Evaluating a model on one split of a dataset (the test split unless told otherwise): accuracy for graded tasks (arith, program,
 * GSM8K-style and prompt-completion files), perplexity for text, plus decoding throughput and
 * the model's size. The result is a Schema, so reports and event logs can store and re-read it.
 */
import { Effect, Schema } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countParams, type Params } from "../model/Params.ts"
import type { Dataset } from "../services/Datasets.ts"
import type { Split } from "../tasks/Task.ts"
import { evaluateAccuracy } from "./Accuracy.ts"
import { type GreedyDecoder, tfjsGreedyDecoder } from "./GreedyDecoder.ts"
import { blockwiseGroupLoss, evaluatePerplexity, type GroupLoss } from "./Perplexity.ts"
import { residentSource } from "../model/WeightSource.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import type { MemoryBudgetExceeded } from "../model/Footprint.ts"

export const EvalMetrics = Schema.Struct({
  dataset: Schema.String,
  examples: Schema.Int,
  /** Fraction graded correct (exact match or pass@1); absent for text datasets. */
  accuracy: Schema.optionalKey(Schema.Number),
  correct: Schema.optionalKey(Schema.Int),
  /** Perplexity over completion tokens; absent for graded datasets. */
  perplexity: Schema.optionalKey(Schema.Number),
  parameters: Schema.Int,
  nonEmbeddingParameters: Schema.Int,
  seconds: Schema.Number,
  examplesPerSecond: Schema.Number,
  /** Generated tokens per second while decoding (graded datasets). */
  tokensPerSecond: Schema.optionalKey(Schema.Number)
})
export type EvalMetrics = typeof EvalMetrics.Type

export interface EvaluateOptions {
  /** At most this many examples, from the start of the split. */
  readonly examples: number
  /** Default: test. */
  readonly split?: Split
  readonly batchSize: number
  /** The device budget (DeviceMemory's) that decoding batches and block-by-block uploads are checked against. */
  readonly room: DeviceRoom
  readonly maxSeqLen: number
  readonly onProgress?: (done: number, total: number) => void
}

export const evaluateDataset = (
  config: ModelConfig,
  params: Params,
  tokenizer: Tokenizer,
  dataset: Dataset,
  options: EvaluateOptions
): Effect.Effect<EvalMetrics, MemoryBudgetExceeded> =>
  dataset.grader !== undefined
    ? evaluateGraded(config, tfjsGreedyDecoder(config, params), tokenizer, dataset, options)
    : evaluateText(config, blockwiseGroupLoss(residentSource(config, params, options.room)), tokenizer, dataset, options)

/** Accuracy on a graded dataset's split with any greedy decoder (tfjs, or ONNX Runtime's); `config` gives the size. */
export const evaluateGraded = (
  config: ModelConfig,
  decoder: GreedyDecoder,
  tokenizer: Tokenizer,
  dataset: Dataset,
  options: EvaluateOptions
): Effect.Effect<EvalMetrics, MemoryBudgetExceeded> =>
  Effect.gen(function*() {
    if (dataset.grader === undefined) return yield* Effect.die(new Error(`evaluateGraded: ${dataset.name} has no grader`))
    const examples = dataset.take(options.split ?? "test", options.examples)
    const counts = countParams(config)
    const result = yield* evaluateAccuracy(config, decoder, tokenizer, examples, dataset.grader, {
      batchSize: options.batchSize,
      room: options.room,
      ...(options.onProgress ? { onProgress: options.onProgress } : {})
    })
    return {
      dataset: dataset.name,
      examples: result.examples,
      accuracy: result.accuracy,
      correct: result.correct,
      parameters: counts.total,
      nonEmbeddingParameters: counts.nonEmbedding,
      seconds: result.seconds,
      examplesPerSecond: result.examples / result.seconds,
      tokensPerSecond: result.generatedTokens / result.seconds
    }
  })

/**
 * Perplexity on a text dataset's split (test unless told otherwise), with the losses of any
 * GroupLoss (block by block from a WeightSource needs no more device memory than one block).
 */
export const evaluateText = <E>(
  config: ModelConfig,
  loss: GroupLoss<E>,
  tokenizer: Tokenizer,
  dataset: Dataset,
  options: EvaluateOptions
): Effect.Effect<EvalMetrics, E> =>
  Effect.gen(function*() {
    const examples = dataset.take(options.split ?? "test", options.examples)
    const counts = countParams(config)
    const started = performance.now()
    const result = yield* evaluatePerplexity(loss, config.hiddenSize, tokenizer, examples, options)
    const seconds = (performance.now() - started) / 1000
    return {
      dataset: dataset.name,
      examples: result.examples,
      perplexity: result.perplexity,
      parameters: counts.total,
      nonEmbeddingParameters: counts.nonEmbedding,
      seconds,
      examplesPerSecond: result.examples / seconds
    }
  })
