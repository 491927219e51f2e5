/**
 * Importance of attention key/value groups: one KV head together with the R = H / KV query heads
 * that read it. Pruning whole groups keeps every layer GQA-legal (query heads stay a multiple of
 * key/value heads) and hidden_size unchanged.
 *
 * `contribution`: the mean over calibration tokens of ‖context_g · W_o[g]‖₂, the norm of the
 * group's share of the attention output (its R heads' merged context times the matching rows of
 * o_proj, internal orientation). o_proj's bias belongs to no group and is left out.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { runBlocks } from "../model/Blockwise.ts"
import { deferredReads } from "../model/Read.ts"
import type { WeightSource } from "../model/WeightSource.ts"
import { type CalibrationBatch, realTokens, type ScoringProgress, tokenMask } from "./Calibration.ts"
import type { HeadScores } from "./Scores.ts"

export const contributionScores = <E>(source: WeightSource<E>, batches: ReadonlyArray<CalibrationBatch>, progress: ScoringProgress = {}) =>
  Effect.gen(function*() {
    const { config } = source
    const sums = config.layers.map((layer) => new Float64Array(layer.numKeyValueHeads))
    const masks = batches.map((batch) => tokenMask(batch))
    // The observer runs inside a tidy: its sums are read after each block (its weights released), in observation order.
    const reads = deferredReads()
    const hidden = yield* runBlocks(source, batches, {
      ...progress,
      afterBlock: () => reads.flush,
      observe: (b, i, name, merged, weights) => {
        if (name !== "attn.context") return
        const shape = config.layers[i]
        const width = (shape.numHeads / shape.numKeyValueHeads) * config.headDim // R * hd columns per group
        const [N] = merged.shape
        const o = weights.o.w // [H*hd, D]
        const perGroup = Array.from({ length: shape.numKeyValueHeads }, (_, g) => {
          const part = tf.matMul(tf.slice(merged, [0, g * width], [N, width]), tf.slice(o, [g * width, 0], [width, o.shape[1]]))
          return tf.sqrt(tf.sum(tf.square(part), 1)) // [N]
        })
        const norms = tf.stack(perGroup, 1) as tf.Tensor2D // [N, KV]
        reads.defer(tf.matMul(masks[b], norms), (data) => {
          for (let g = 0; g < data.length; g++) sums[i][g] += data[g]
        })
      }
    }).pipe(
      Effect.ensuring(Effect.andThen(reads.release, Effect.sync(() => tf.dispose(masks))))
    )
    tf.dispose(hidden)
    const samples = batches.reduce((n, b) => n + b.batchSize, 0)
    const tokens = batches.reduce((n, b) => n + realTokens(b), 0)
    for (const s of sums) for (let g = 0; g < s.length; g++) s[g] /= Math.max(tokens, 1)
    const scores: HeadScores = { unit: "heads", scorer: "contribution", perLayer: sums, samples, tokens }
    return scores
  })
