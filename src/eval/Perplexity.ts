/**
 * Perplexity: exp of the mean next-token loss over the completion tokens of a set of
 * examples (for plain text, every token after `<bos>`). The losses come from a `GroupLoss`:
 * block by block from a WeightSource with the LM head in vocabulary chunks (`blockwiseGroupLoss`:
 * neither the model nor the logits of a batch need to fit the device at once), or from an ONNX
 * Runtime session (onnx/OrtPerplexity.ts). The examples go through in groups whose hidden
 * states stay under a fixed size.
 */
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import { type BlockwiseLoss, blockwiseLoss, type LossBatch, lossBatch } from "../model/Blockwise.ts"
import type { WeightSource } from "../model/WeightSource.ts"
import type { MemoryBudgetExceeded } from "../model/Footprint.ts"
import { encodeExample } from "../tasks/Encode.ts"
import type { Example } from "../tasks/Task.ts"
import { buildBatch } from "../tune/Batches.ts"

export interface PerplexityResult {
  readonly examples: number
  readonly tokens: number
  readonly meanLoss: number
  readonly perplexity: number
}

/** Weighted next-token loss sums of a group of batches, however they are computed. */
export type GroupLoss<E> = (batches: ReadonlyArray<LossBatch>) => Effect.Effect<BlockwiseLoss, E>

/** The losses block by block from a WeightSource; `onBlock` is told after each decoder block of each group. */
export const blockwiseGroupLoss = <E>(
  source: WeightSource<E>,
  onBlock?: (done: number, total: number) => void
): GroupLoss<E | MemoryBudgetExceeded> =>
(batches) => blockwiseLoss(source, batches, onBlock ? { onBlock } : {})

/** Hidden states carried between blocks for one group of batches: at most this many floats (256 MB). */
const groupFloats = 2 ** 26

export interface PerplexityOptions {
  readonly batchSize: number
  readonly maxSeqLen: number
}

export const evaluatePerplexity = <E>(
  loss: GroupLoss<E>,
  hiddenSize: number,
  tokenizer: Tokenizer,
  examples: ReadonlyArray<Example>,
  options: PerplexityOptions
): Effect.Effect<PerplexityResult, E> =>
  Effect.gen(function*() {
    const batches = []
    for (let start = 0; start < examples.length; start += options.batchSize) {
      const encoded = examples.slice(start, start + options.batchSize).map((e) => encodeExample(tokenizer, e))
      batches.push(lossBatch(buildBatch(encoded, options.maxSeqLen, tokenizer.padId ?? 0, true)))
    }
    let lossSum = 0
    let tokens = 0
    const D = hiddenSize
    for (let start = 0; start < batches.length;) {
      let end = start + 1
      let floats = batches[start].ids.length * D
      while (end < batches.length && floats + batches[end].ids.length * D <= groupFloats) floats += batches[end++].ids.length * D
      const group = yield* loss(batches.slice(start, end))
      lossSum += group.weightedSums.reduce((a, b) => a + b, 0)
      tokens += group.counts.reduce((a, b) => a + b, 0)
      start = end
    }
    const meanLoss = tokens === 0 ? NaN : lossSum / tokens
    return { examples: examples.length, tokens, meanLoss, perplexity: Math.exp(meanLoss) }
  })
