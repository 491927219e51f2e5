/**
 * Task accuracy: greedy decoding with the KV cache over a test split, in batches, each
 * completion graded by the task's grader (exact match on the final answer for arith and
 * GSM8K-style data, pass@1 by execution for program). The batch is lowered to what the device
 * holds beside the model (the prompt pass's logits over a large vocabulary grow with it), and
 * a model that cannot decode even one sequence is refused with the numbers; a decoder off the
 * tfjs device (ONNX Runtime) decodes the batch asked for.
 */
import { Effect } from "effect"
import { decodingBytes, formatBytes } from "../model/Footprint.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import type { MemoryBudgetExceeded } from "../model/Footprint.ts"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { encodePrompt } from "../tasks/Encode.ts"
import type { Example, Grader } from "../tasks/Task.ts"
import type { GreedyDecoder } from "./GreedyDecoder.ts"

export interface AccuracyOptions {
  readonly batchSize: number
  /** The device budget (DeviceMemory's) a decoding batch must fit; a smaller batch is taken when it does not. */
  readonly room: DeviceRoom
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

/** Graded accuracy with a greedy decoder (tfjsGreedyDecoder, or ONNX Runtime's); `config` sizes the decoding. */
export const evaluateAccuracy = (
  config: ModelConfig,
  decoder: GreedyDecoder,
  tokenizer: Tokenizer,
  examples: ReadonlyArray<Example>,
  grader: Grader,
  options: AccuracyOptions
): Effect.Effect<AccuracyResult, MemoryBudgetExceeded> =>
  Effect.gen(function*() {
    const started = performance.now()
    const maxNewTokens = options.maxNewTokens ??
      Math.max(...examples.map((e) => tokenizer.encode(e.completion).length)) + 8
    const stopTokens = tokenizer.eosId !== undefined ? [tokenizer.eosId] : []
    const prompts = examples.map((e) => encodePrompt(tokenizer, e.prompt))
    const maxLen = Math.max(0, ...prompts.map((p) => p.length)) + maxNewTokens
    const wanted = Math.min(options.batchSize, Math.max(examples.length, 1))
    const batchSize = !decoder.onDevice ? wanted : yield* options.room.largestFitting(
      (n) => `Decoding ${n} sequence${n === 1 ? "" : "s"} of up to ${maxLen} tokens`,
      wanted,
      (n) => decodingBytes(config, n, maxLen),
      "Evaluate a smaller model, raise --memory if the device has more, or use the tensorflow backend (--backend tensorflow): " +
        "the wasm heap holds at most 4 GiB."
    )
    if (batchSize < wanted) {
      yield* Effect.logWarning(
        `evaluation decodes ${batchSize} sequence${batchSize === 1 ? "" : "s"} at a time instead of ${wanted}: ${wanted} sequences of up to ` +
          `${maxLen} tokens would need about ${formatBytes(decodingBytes(config, wanted, maxLen))} beside the model`
      )
    }
    let correct = 0
    let generatedTokens = 0
    const samples: Array<{ prompt: string; completion: string; correct: boolean }> = []
    for (let start = 0; start < examples.length; start += batchSize) {
      const batch = examples.slice(start, start + batchSize)
      const outputs = yield* decoder.decode(prompts.slice(start, start + batchSize), { maxNewTokens, stopTokens })
      outputs.forEach((ids, i) => {
        generatedTokens += ids.length
        const completion = tokenizer.decode(ids, { skipSpecialTokens: true })
        const ok = grader.grade(batch[i], completion)
        if (ok) correct++
        if (samples.length < 5) samples.push({ prompt: batch[i].prompt, completion, correct: ok })
      })
      options.onProgress?.(Math.min(start + batchSize, examples.length), examples.length)
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
