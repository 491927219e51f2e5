/**
 * Next-token losses for perplexity on ONNX Runtime: a session on the graph with the `nll` head
 * (DecoderGraph.ts) returns −log p(target) at every position, so only [B, T] floats come back
 * however large the vocabulary. A batch's rows go through in runs of similar length whose
 * logits stay under a fixed size (ONNX Runtime holds them and their log-softmax while it runs).
 */
import { Effect } from "effect"
import type { LossBatch } from "../model/Blockwise.ts"
import { usedLength } from "../model/LengthBuckets.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { GroupLoss } from "../eval/Perplexity.ts"
import { type DecoderSession, runTargetNll } from "./OrtDecoder.ts"

/** Logits one run may hold, in floats (128 MiB; the log-softmax as much again). */
export const runLogitFloats = 2 ** 25

/** Row b of a [B, T] array, its first `length` positions. */
const rowOf = (values: Int32Array, T: number, b: number, length: number) => Array.from(values.subarray(b * T, b * T + length))

/**
 * The weighted loss sum and weight of one batch. Rows run shortest first, in runs cut to their
 * longest row's used length (positions after a row's last weighted one change none of its
 * losses), as many rows a run as the logits allow.
 */
const batchLoss = async (session: DecoderSession, config: ModelConfig, batch: LossBatch, logitFloats: number) => {
  const { seqLen: T, weights } = batch
  const V = config.vocabSize
  const used = Array.from({ length: batch.batchSize }, (_, b) => usedLength(batch, b))
  const order = used.flatMap((n, b) => (n > 0 ? [b] : [])).sort((a, b) => used[a] - used[b] || a - b)
  let sum = 0
  let count = 0
  for (let first = 0; first < order.length;) {
    let end = first + 1
    while (end < order.length && (end + 1 - first) * used[order[end]] * V <= logitFloats) end++
    const rows = order.slice(first, end)
    const length = used[order[end - 1]]
    const nll = await runTargetNll(session, config, rows.map((b) => rowOf(batch.ids, T, b, length)), rows.map((b) => rowOf(batch.targets, T, b, length)))
    rows.forEach((b, r) => {
      for (let t = 0; t < length; t++) {
        const w = weights[b * T + t]
        if (w === 0) continue
        sum += w * nll[r * length + t]
        count += w
      }
    })
    first = end
  }
  return { sum, count }
}

export interface OrtGroupLossOptions {
  /** Told how many rows (examples) are done. */
  readonly onRows?: (done: number) => void
  /** Default `runLogitFloats`. */
  readonly logitFloats?: number
}

/** Losses on `session` (opened with `head: "nll"`). */
export const ortGroupLoss = (session: DecoderSession, config: ModelConfig, options: OrtGroupLossOptions = {}): GroupLoss<never> => {
  let done = 0
  return (batches) =>
    Effect.promise(async () => {
      const weightedSums: Array<number> = []
      const counts: Array<number> = []
      for (const batch of batches) {
        const { sum, count } = await batchLoss(session, config, batch, options.logitFloats ?? runLogitFloats)
        weightedSums.push(sum)
        counts.push(count)
        done += batch.batchSize
        options.onRows?.(done)
      }
      return { weightedSums, counts }
    })
}
