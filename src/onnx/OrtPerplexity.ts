/**
 * Next-token losses for perplexity on ONNX Runtime: a session on the graph with the `nll` head
 * (DecoderGraph.ts) returns −log p(target) at every position, so only [B, T] floats come back
 * however large the vocabulary. A batch's rows go through in runs whose logits stay under a
 * fixed size (ONNX Runtime holds them and their log-softmax while it runs).
 */
import { Effect } from "effect"
import type { LossBatch } from "../model/Blockwise.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { GroupLoss } from "../eval/Perplexity.ts"
import { type DecoderSession, runTargetNll } from "./OrtDecoder.ts"

/** Logits one run may hold, in floats (128 MiB; the log-softmax as much again). */
export const runLogitFloats = 2 ** 25

const rowsOf = (values: Int32Array, T: number, rows: ReadonlyArray<number>) => rows.map((b) => Array.from(values.subarray(b * T, (b + 1) * T)))

/** The weighted loss sum and weight of one batch. */
const batchLoss = async (session: DecoderSession, config: ModelConfig, batch: LossBatch, logitFloats: number) => {
  const { batchSize: B, seqLen: T, weights } = batch
  const perRun = Math.max(1, Math.floor(logitFloats / (T * config.vocabSize)))
  let sum = 0
  let count = 0
  for (let first = 0; first < B; first += perRun) {
    const rows = Array.from({ length: Math.min(perRun, B - first) }, (_, r) => first + r)
    const nll = await runTargetNll(session, config, rowsOf(batch.ids, T, rows), rowsOf(batch.targets, T, rows))
    rows.forEach((b, r) => {
      for (let t = 0; t < T; t++) {
        const w = weights[b * T + t]
        if (w === 0) continue
        sum += w * nll[r * T + t]
        count += w
      }
    })
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
