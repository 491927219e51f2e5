/**
 * Perplexity: exp of the mean next-token loss over the completion tokens of a set of
 * examples (for plain text, every token after `<bos>`). Computed block by block from a
 * WeightSource with the LM head in vocabulary chunks, so neither the model nor the logits of a
 * batch need to fit the device at once; the examples go through in groups whose hidden states
 * stay under a fixed size.
 */
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import { blockwiseLoss, lossBatch } from "../model/Blockwise.ts"
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

/** Hidden states carried between blocks for one group of batches: at most this many floats (256 MB). */
const groupFloats = 2 ** 26

export interface PerplexityOptions {
  readonly batchSize: number
  readonly maxSeqLen: number
  /** Told after each decoder block of each group of batches. */
  readonly onBlock?: (done: number, total: number) => void
}

export const evaluatePerplexity = <E>(
  source: WeightSource<E>,
  tokenizer: Tokenizer,
  examples: ReadonlyArray<Example>,
  options: PerplexityOptions
): Effect.Effect<PerplexityResult, E | MemoryBudgetExceeded> =>
  Effect.gen(function*() {
    const batches = []
    for (let start = 0; start < examples.length; start += options.batchSize) {
      const encoded = examples.slice(start, start + options.batchSize).map((e) => encodeExample(tokenizer, e))
      batches.push(lossBatch(buildBatch(encoded, options.maxSeqLen, tokenizer.padId ?? 0, true)))
    }
    let lossSum = 0
    let tokens = 0
    const D = source.config.hiddenSize
    for (let start = 0; start < batches.length;) {
      let end = start + 1
      let floats = batches[start].ids.length * D
      while (end < batches.length && floats + batches[end].ids.length * D <= groupFloats) floats += batches[end++].ids.length * D
      const loss = yield* blockwiseLoss(source, batches.slice(start, end), options.onBlock ? { onBlock: options.onBlock } : {})
      lossSum += loss.weightedSums.reduce((a, b) => a + b, 0)
      tokens += loss.counts.reduce((a, b) => a + b, 0)
      start = end
    }
    const meanLoss = tokens === 0 ? NaN : lossSum / tokens
    return { examples: examples.length, tokens, meanLoss, perplexity: Math.exp(meanLoss) }
  })
