/**
 * Task accuracy: greedy decoding with the KV cache over a test split, in batches, each
 * completion graded by the task's grader (exact match on the final answer for arith and
 * GSM8K-style data, pass@1 by execution for program).
 */
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import { encodePrompt } from "../tasks/Encode.ts"
import type { Example, Grader } from "../tasks/Task.ts"
import type { GreedyDecoder } from "./GreedyDecoder.ts"

export interface AccuracyOptions {
  readonly batchSize: number
  /** Generation budget per example; by default the longest reference completion plus a margin. */
  readonly maxNewTokens?: number
  /** Called after each batch with (examples done, total). */
  readonly onProgress?: (done: number, total: number) => void
}

export interface AccuracyResult {
  readonly examples: number
  readonly correct: number
  readonly accuracy: number
  readonly generatedTokens: number
  readonly seconds: number
  /** The first few graded completions, for eyeballing what the model does. */
  readonly samples: ReadonlyArray<{ prompt: string; completion: string; correct: boolean }>
}

/** Graded accuracy with a greedy decoder (tfjsGreedyDecoder, or ONNX Runtime's). */
export const evaluateAccuracy = (
  decoder: GreedyDecoder,
  tokenizer: Tokenizer,
  examples: ReadonlyArray<Example>,
  grader: Grader,
  options: AccuracyOptions
): Effect.Effect<AccuracyResult> =>
  Effect.gen(function*() {
    const started = performance.now()
    const maxNewTokens = options.maxNewTokens ??
      Math.max(...examples.map((e) => tokenizer.encode(e.completion).length)) + 8
    const stopTokens = tokenizer.eosId !== undefined ? [tokenizer.eosId] : []
    let correct = 0
    let generatedTokens = 0
    const samples: Array<{ prompt: string; completion: string; correct: boolean }> = []
    for (let start = 0; start < examples.length; start += options.batchSize) {
      const batch = examples.slice(start, start + options.batchSize)
      const outputs = yield* decoder(batch.map((e) => encodePrompt(tokenizer, e.prompt)), { maxNewTokens, stopTokens })
      outputs.forEach((ids, i) => {
        generatedTokens += ids.length
        const completion = tokenizer.decode(ids, { skipSpecialTokens: true })
        const ok = grader.grade(batch[i], completion)
        if (ok) correct++
        if (samples.length < 5) samples.push({ prompt: batch[i].prompt, completion, correct: ok })
      })
      options.onProgress?.(Math.min(start + options.batchSize, examples.length), examples.length)
      yield* Effect.yieldNow // a chance to be interrupted between batches
    }
    return {
      examples: examples.length,
      correct,
      accuracy: examples.length === 0 ? 0 : correct / examples.length,
      generatedTokens,
      seconds: (performance.now() - started) / 1000,
      samples
    }
  })
