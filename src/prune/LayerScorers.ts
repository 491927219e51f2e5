/**
 * Importance of whole decoder blocks.
 *
 * - `block-influence` (ShortGPT's Block Influence): 1 − the mean over calibration tokens of
 *   cos(hidden state entering the block, hidden state leaving it). A block that barely turns
 *   the residual stream scores near 0.
 * - `skip-loss`: the increase of the mean next-token loss when the block is skipped, measured:
 *   the model is run once whole and once without each block (block by block: see
 *   skipLossScores). Negative when the model does better without the block.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import {
  applyBlock,
  batchContexts,
  disposeContexts,
  embedBatches,
  ensureBlockFits,
  finalNorm,
  lossBatch,
  lossOfFinals,
  runBlocks
} from "../model/Blockwise.ts"
import { deferredReads } from "../model/Read.ts"
import { releaseLayer, type WeightSource } from "../model/WeightSource.ts"
import { type CalibrationBatch, realTokens, type ScoringProgress, tokenMask } from "./Calibration.ts"
import type { LayerScores } from "./Scores.ts"

export const blockInfluenceScores = <E>(source: WeightSource<E>, batches: ReadonlyArray<CalibrationBatch>, progress: ScoringProgress = {}) =>
  Effect.gen(function*() {
    const cosSums = new Float64Array(source.config.layers.length)
    const masks = batches.map((batch) => tokenMask(batch))
    let input: tf.Tensor2D | undefined
    // The observer runs inside a tidy: its sums are read after each block (its weights released), in observation order.
    const reads = deferredReads()
    const hidden = yield* runBlocks(source, batches, {
      ...progress,
      afterBlock: () => reads.flush,
      observe: (b, i, name, h) => {
        if (name === "block.in") input = h
        else if (name === "block.out") {
          const x = input!
          const dot = tf.sum(tf.mul(x, h), 1, true) // [N, 1]
          const norms = tf.mul(tf.norm(x, "euclidean", 1, true), tf.norm(h, "euclidean", 1, true))
          const cos = tf.div(dot, tf.maximum(norms, 1e-30))
          reads.defer(tf.matMul(masks[b], cos), (data) => {
            cosSums[i] += data[0]
          })
        }
      }
    }).pipe(
      Effect.ensuring(Effect.andThen(reads.release, Effect.sync(() => tf.dispose(masks))))
    )
    tf.dispose(hidden)
    const samples = batches.reduce((n, b) => n + b.batchSize, 0)
    const tokens = batches.reduce((n, b) => n + realTokens(b), 0)
    const perBlock = cosSums.map((c) => 1 - c / Math.max(tokens, 1))
    const scores: LayerScores = { unit: "layers", scorer: "block-influence", perBlock, samples, tokens }
    return scores
  })

/**
 * Mean next-token loss increase over all counted targets when each block is skipped. Block by
 * block, with each block's weights fetched once: beside the whole model's hidden states, one
 * stream per block i carries the states of the model without block i (a copy of the whole
 * model's states entering block i, then every later block applied to it); at the end every
 * stream's loss is taken with the chunked LM head.
 */
export const skipLossScores = <E>(source: WeightSource<E>, batches: ReadonlyArray<CalibrationBatch>, progress: ScoringProgress = {}) =>
  Effect.gen(function*() {
    const { config } = source
    const L = config.layers.length
    const inputs = batches.filter((b) => b.weights!.some((w) => w > 0)).map((b) => lossBatch(b))
    const contexts = batchContexts(config, inputs)
    let whole: Array<tf.Tensor2D> = []
    const skipped: Array<Array<tf.Tensor2D>> = []
    const increase = new Float64Array(L)
    yield* Effect.gen(function*() {
      whole = yield* embedBatches(source, inputs)
      for (let layer = 0; layer < L; layer++) {
        yield* ensureBlockFits(source.room, config, layer, inputs)
        const weights = yield* source.layer(layer)
        try {
          for (let i = 0; i < layer; i++) skipped[i] = skipped[i].map((h, b) => applyBlock(config, layer, weights, h, contexts[b]))
          skipped[layer] = whole.map((h) => tf.clone(h))
          whole = whole.map((h, b) => applyBlock(config, layer, weights, h, contexts[b]))
        } finally {
          releaseLayer(weights)
        }
        progress.onBlock?.(layer + 1, L)
        yield* Effect.yieldNow
      }
      const wholeLoss = yield* lossOfFinals(source, inputs, yield* finalNorm(source, whole))
      whole = []
      for (let i = 0; i < L; i++) {
        const loss = yield* lossOfFinals(source, inputs, yield* finalNorm(source, skipped[i]))
        skipped[i] = []
        increase[i] = loss.weightedSums.reduce((sum, x, b) => sum + x - wholeLoss.weightedSums[b], 0)
      }
    }).pipe(Effect.ensuring(Effect.sync(() => {
      tf.dispose([...whole, ...skipped.flat()])
      disposeContexts(contexts)
    })))
    const targets = inputs.reduce((n, b) => n + b.weights.reduce((a, w) => a + w, 0), 0)
    const samples = inputs.reduce((n, b) => n + b.batchSize, 0)
    const tokens = batches.filter((b) => b.weights!.some((w) => w > 0)).reduce((n, b) => n + realTokens(b), 0)
    const perBlock = increase.map((x) => x / Math.max(targets, 1))
    const scores: LayerScores = { unit: "layers", scorer: "skip-loss", perBlock, samples, tokens }
    return scores
  })
