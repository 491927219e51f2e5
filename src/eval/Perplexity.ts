/**
 * Perplexity: exp of the mean next-token loss over the completion tokens of a set of
 * examples (for plain text, every token after `<bos>`).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { nextTokenLoss } from "../model/Transformer.ts"
import { encodeExample } from "../tasks/Encode.ts"
import type { Example } from "../tasks/Task.ts"
import { buildBatch } from "../tune/Batches.ts"

export interface PerplexityResult {
  readonly examples: number
  readonly tokens: number
  readonly meanLoss: number
  readonly perplexity: number
}

export const evaluatePerplexity = (
  config: ModelConfig,
  params: Params,
  tokenizer: Tokenizer,
  examples: ReadonlyArray<Example>,
  options: { readonly batchSize: number; readonly maxSeqLen: number }
): Effect.Effect<PerplexityResult> =>
  Effect.gen(function*() {
    let lossSum = 0
    let tokens = 0
    for (let start = 0; start < examples.length; start += options.batchSize) {
      const encoded = examples.slice(start, start + options.batchSize).map((e) => encodeExample(tokenizer, e))
      const batch = buildBatch(encoded, options.maxSeqLen, tokenizer.padId ?? 0, true)
      const counted = batch.weights!.reduce((a, b) => a + b, 0)
      const loss = tf.tidy(() =>
        nextTokenLoss(
          config,
          params,
          tf.tensor2d(batch.ids, [batch.batchSize, batch.seqLen], "int32"),
          tf.tensor2d(batch.weights!, [batch.batchSize, batch.seqLen - 1])
        ).dataSync()[0]
      )
      lossSum += loss * counted
      tokens += counted
      yield* Effect.yieldNow
    }
    const meanLoss = tokens === 0 ? NaN : lossSum / tokens
    return { examples: examples.length, tokens, meanLoss, perplexity: Math.exp(meanLoss) }
  })
