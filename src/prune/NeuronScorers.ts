/**
 * Importance of MLP neurons. A neuron is one channel of the input of down_proj,
 * act(gate(x)) · up(x); removing it deletes a column of gate_proj and up_proj (rows in the file)
 * and a row of down_proj (a column in the file). Every scorer is a pure function of the model
 * and calibration batches, streaming: per batch it reduces the activations to per-neuron sums
 * on the device and adds them into Float64Arrays, so memory does not grow with the samples.
 *
 * - `activation` (Minitron): mean |activation| over calibration tokens.
 * - `wanda`: ‖down_proj column‖₂ · ‖activation‖₂ over tokens (Wanda's |W|·‖X‖ per weight,
 *   summed over the neuron's output weights in the ℓ2 sense).
 * - `taylor`: first-order estimate of the loss change when the neuron is removed: per batch
 *   |Σ_tokens a · ∂L/∂a|, summed over batches. The gradient with respect to the activation is
 *   taken as the gradient with respect to a zero offset added to it (ForwardOptions.mlpOffsets).
 * - `contrastive` (the PTL reference, DESIGN §1): from signed activations at chosen positions
 *   (default the last token), a neuron is "strongly active" on a sample when it is among that
 *   sample's top-n and positive (a negative or zero activation is never strong, even when fewer
 *   than n neurons fire). Neurons most often strongly active on general text are protected; the rest
 *   rank by how often they are strongly active on task data, then on general text, then index.
 * - `random`: see RandomScores.ts.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { blockwiseBackward, lossBatch, runBlocks } from "../model/Blockwise.ts"
import { type DeferredReads, deferredReads } from "../model/Read.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { LayerParams } from "../model/Params.ts"
import { decoderBlock } from "../model/Transformer.ts"
import type { WeightSource } from "../model/WeightSource.ts"
import { accumulate, type CalibrationBatch, firstSequences, realTokens, type ScoringProgress, tokenMask } from "./Calibration.ts"
import type { NeuronScores } from "./Scores.ts"

const zeros = (config: ModelConfig): Array<Float64Array> =>
  config.layers.map((layer) => new Float64Array(layer.intermediateSize))

/** Σ over the real tokens of the batches of f(activation), per neuron and layer, with the counts. */
const sumOverTokens = <E>(
  source: WeightSource<E>,
  batches: ReadonlyArray<CalibrationBatch>,
  f: (act: tf.Tensor2D) => tf.Tensor,
  progress: ScoringProgress = {},
  /** Called once per layer with its weights, before its first observation (inside the block's tidy: defer reads). */
  perLayer?: (layer: number, weights: LayerParams, reads: DeferredReads) => void
) =>
  Effect.gen(function*() {
    const sums = zeros(source.config)
    const masks = batches.map((batch) => tokenMask(batch))
    const seen = new Set<number>()
    // The observer runs inside a tidy: its sums are read after each block (its weights released), in observation order.
    const reads = deferredReads()
    const hidden = yield* runBlocks(source, batches, {
      ...progress,
      afterBlock: () => reads.flush,
      observe: (b, i, name, act, weights) => {
        if (name !== "mlp.act") return
        if (!seen.has(i)) {
          seen.add(i)
          perLayer?.(i, weights, reads)
        }
        reads.defer(tf.matMul(masks[b], f(act)), (data) => accumulate(sums[i], data))
      }
    }).pipe(
      Effect.ensuring(Effect.andThen(reads.release, Effect.sync(() => tf.dispose(masks))))
    )
    tf.dispose(hidden)
    const samples = batches.reduce((n, b) => n + b.batchSize, 0)
    const tokens = batches.reduce((n, b) => n + realTokens(b), 0)
    return { sums, samples, tokens }
  })

/** Mean absolute activation of each neuron over the real tokens of the batches. */
export const activationScores = <E>(source: WeightSource<E>, batches: ReadonlyArray<CalibrationBatch>, progress?: ScoringProgress) =>
  Effect.map(sumOverTokens(source, batches, tf.abs, progress), ({ sums, samples, tokens }): NeuronScores => {
    for (const s of sums) for (let j = 0; j < s.length; j++) s[j] /= Math.max(tokens, 1)
    return { unit: "neurons", scorer: "activation", perLayer: sums, samples, tokens }
  })

/** ‖down_proj column‖₂ (a row of the internal [I, D] weight) times the ℓ2 norm of the activation over tokens. */
export const wandaScores = <E>(source: WeightSource<E>, batches: ReadonlyArray<CalibrationBatch>, progress?: ScoringProgress) => {
  const weightNorms: Array<Float32Array> = []
  return Effect.map(
    sumOverTokens(source, batches, tf.square, progress, (i, weights, reads) => {
      reads.defer(tf.norm(weights.down.w, "euclidean", 1), (data) => {
        weightNorms[i] = data as Float32Array
      })
    }),
    ({ sums: squares, samples, tokens }): NeuronScores => {
      const perLayer = squares.map((sq, i) => sq.map((s, j) => Math.sqrt(s) * weightNorms[i][j]))
      return { unit: "neurons", scorer: "wanda", perLayer, samples, tokens }
    }
  )
}

/**
 * First-order Taylor importance: for each batch the change of its mean next-token loss when a
 * neuron's activation is scaled to zero, to first order, |Σ_t a_t · ∂L/∂a_t|, summed over
 * batches. Exactly the derivative the finite difference d/dε L(down_proj column · (1 + ε))
 * measures. Block by block: a forward pass keeps each block's input (in host memory), the
 * loss gradient at the last block comes from the chunked LM head, and a backward pass takes
 * one block's weights at a time, recomputing the block from its input (gradient checkpointing
 * at block boundaries).
 */
export const taylorScores = <E>(source: WeightSource<E>, batches: ReadonlyArray<CalibrationBatch>, progress: ScoringProgress = {}) =>
  Effect.gen(function*() {
    const { config } = source
    const scores = zeros(config)
    // The backward runs inside a tidy: each block's sums are kept and read after the block, in
    // the order they were made.
    const reads = deferredReads()
    yield* blockwiseBackward(source, batches.map((b) => lossBatch(b)), (layer, _, weights, input, context, upstream) =>
      tf.tidy(() => {
        const offset = tf.zeros([input.shape[0], config.layers[layer].intermediateSize]) as tf.Tensor2D
        let act: tf.Tensor2D | undefined
        const block = (x: tf.Tensor, off: tf.Tensor) =>
          decoderBlock(config, layer, weights, x as tf.Tensor2D, context, {
            mlpOffset: off as tf.Tensor2D,
            observe: (_, name, t) => {
              // tf.grads releases the forward's intermediates: keep the activation past it.
              if (name === "mlp.act") act = tf.keep(t)
            }
          }).h
        const [dx, dOffset] = tf.grads(block)([input, offset], upstream)
        try {
          reads.defer(tf.sum(tf.mul(act!, dOffset), 0), (s) => {
            const into = scores[layer]
            for (let j = 0; j < into.length; j++) into[j] += Math.abs(s[j])
          })
        } finally {
          act?.dispose()
        }
        return dx as tf.Tensor2D
      }), { ...progress, afterBlock: () => reads.flush }).pipe(Effect.ensuring(reads.release))
    const samples = batches.reduce((n, b) => n + b.batchSize, 0)
    const tokens = batches.reduce((n, b) => n + realTokens(b, b.seqLen - 1), 0)
    const result: NeuronScores = { unit: "neurons", scorer: "taylor", perLayer: scores, samples, tokens }
    return result
  })

export interface ContrastiveOptions {
  /** Task sequences read (the reference: about 10 math samples). */
  readonly taskSamples?: number
  /** General-text sequences read (the reference: about 1000). */
  readonly generalSamples?: number
  /**
   * Size of a sample's "strongly active" set: its top-n neurons by signed activation at each
   * observed position. Default: a tenth of the layer's width (rounded up).
   */
  readonly topN?: number
  /** Neurons protected as "most active on general text": the top this-many by general hits. Default topN. */
  readonly protectTop?: number
  /** Positions observed: each sequence's last real token (the reference), or every real token. */
  readonly positions?: "last" | "all"
}

export const contrastiveDefaults = { taskSamples: 10, generalSamples: 1000, positions: "last" } as const

/** Per neuron, how often it is among the positive top-n of an observed position, over at most `maxSamples` sequences. */
const strongHits = <E>(
  source: WeightSource<E>,
  batches: ReadonlyArray<CalibrationBatch>,
  maxSamples: number,
  topN: ReadonlyArray<number>,
  positions: "last" | "all",
  progress: ScoringProgress
) =>
  Effect.gen(function*() {
    const hits = zeros(source.config)
    const used: Array<CalibrationBatch> = []
    let samples = 0
    for (const full of batches) {
      if (samples >= maxSamples) break
      const batch = firstSequences(full, maxSamples - samples)
      used.push(batch)
      samples += batch.batchSize
    }
    const rowsOf = used.map((batch) => {
      const T = batch.seqLen
      return positions === "last"
        ? batch.lengths.map((n, b) => b * T + n - 1)
        : batch.lengths.flatMap((n, b) => Array.from({ length: n }, (_, t) => b * T + t))
    })
    // The observer runs inside a tidy: each block's top-n are read after the block (its weights released).
    const reads = deferredReads()
    const hidden = yield* runBlocks(source, used, {
      ...progress,
      afterBlock: () => reads.flush,
      observe: (b, i, name, act) => {
        if (name !== "mlp.act") return
        const k = Math.min(topN[i], act.shape[1])
        const top = tf.topk(tf.gather(act, tf.tensor1d(rowsOf[b], "int32")), k)
        let indices: tf.TypedArray | undefined
        reads.defer(top.indices, (data) => {
          indices = data
        })
        reads.defer(top.values, (values) => {
          const into = hits[i]
          for (let r = 0; r < indices!.length; r++) if (values[r] > 0) into[indices![r]] += 1
        })
      }
    }).pipe(
      Effect.ensuring(reads.release)
    )
    tf.dispose(hidden)
    const observations = rowsOf.reduce((n, rows) => n + rows.length, 0)
    const tokens = used.reduce((n, b) => n + realTokens(b), 0)
    return { hits, samples, observations, tokens }
  })

/**
 * The PTL reference scorer. Score of neuron j (higher = keep):
 *   2 · protected_j + taskFreq_j + generalFreq_j / (taskObservations + 1)
 * where taskFreq / generalFreq are the fractions of observed positions at which j was in the
 * top-n, and protected_j says j is among the `protectTop` neurons most often in the top-n on
 * general text (with at least one hit). Distinct task frequencies differ by at least
 * 1 / taskObservations, so the general term only breaks ties: the ranking is lexicographic
 * (protected, task frequency, general frequency), then by index in selection.
 */
export const contrastiveScores = <E>(
  source: WeightSource<E>,
  task: ReadonlyArray<CalibrationBatch>,
  general: ReadonlyArray<CalibrationBatch>,
  options: ContrastiveOptions = {},
  progress: ScoringProgress = {}
) =>
  Effect.gen(function*() {
  const config = source.config
  const topN = config.layers.map((layer) => Math.max(1, Math.floor(options.topN ?? Math.ceil(layer.intermediateSize / 10))))
  const positions = options.positions ?? contrastiveDefaults.positions
  const onTask = yield* strongHits(source, task, options.taskSamples ?? contrastiveDefaults.taskSamples, topN, positions, progress)
  const onGeneral = yield* strongHits(
    source,
    general,
    options.generalSamples ?? contrastiveDefaults.generalSamples,
    topN,
    positions,
    progress
  )
  const taskFreq = onTask.hits.map((h) => h.map((x) => x / Math.max(onTask.observations, 1)))
  const generalFreq = onGeneral.hits.map((h) => h.map((x) => x / Math.max(onGeneral.observations, 1)))
  const protectedMask = onGeneral.hits.map((h, i) => {
    const protect = Math.min(options.protectTop ?? topN[i], h.length)
    const order = Array.from({ length: h.length }, (_, j) => j).sort((a, b) => h[b] - h[a] || a - b)
    const mask = new Float64Array(h.length)
    for (const j of order.slice(0, protect)) if (h[j] > 0) mask[j] = 1
    return mask
  })
  const perLayer = taskFreq.map((freq, i) =>
    freq.map((t, j) => 2 * protectedMask[i][j] + t + generalFreq[i][j] / (onTask.observations + 1))
  )
  const scores: NeuronScores = {
    unit: "neurons",
    scorer: "contrastive",
    perLayer,
    samples: onTask.samples + onGeneral.samples,
    tokens: onTask.tokens + onGeneral.tokens,
    details: { taskFrequency: taskFreq, generalFrequency: generalFreq, protected: protectedMask }
  }
  return scores
  })
