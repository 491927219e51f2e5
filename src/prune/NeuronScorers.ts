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
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { nextTokenLoss } from "../model/Transformer.ts"
import {
  accumulate,
  type CalibrationBatch,
  firstSequences,
  idsTensor,
  observeBatch,
  realTokens,
  tokenMask
} from "./Calibration.ts"
import type { NeuronScores } from "./Scores.ts"

const zeros = (config: ModelConfig): Array<Float64Array> =>
  config.layers.map((layer) => new Float64Array(layer.intermediateSize))

/** Σ over the real tokens of the batches of f(activation), per neuron and layer, with the counts. */
const sumOverTokens = (
  config: ModelConfig,
  params: Params,
  batches: Iterable<CalibrationBatch>,
  f: (act: tf.Tensor2D) => tf.Tensor
): { sums: Array<Float64Array>; samples: number; tokens: number } => {
  const sums = zeros(config)
  let samples = 0
  let tokens = 0
  for (const batch of batches) {
    const mask = tokenMask(batch)
    observeBatch(config, params, batch, (i, name, act) => {
      if (name === "mlp.act") accumulate(sums[i], tf.matMul(mask, f(act)))
    })
    mask.dispose()
    samples += batch.batchSize
    tokens += realTokens(batch)
  }
  return { sums, samples, tokens }
}

/** Mean absolute activation of each neuron over the real tokens of the batches. */
export const activationScores = (
  config: ModelConfig,
  params: Params,
  batches: Iterable<CalibrationBatch>
): NeuronScores => {
  const { sums, samples, tokens } = sumOverTokens(config, params, batches, tf.abs)
  for (const s of sums) for (let j = 0; j < s.length; j++) s[j] /= Math.max(tokens, 1)
  return { unit: "neurons", scorer: "activation", perLayer: sums, samples, tokens }
}

/** ‖down_proj column‖₂ (a row of the internal [I, D] weight) times the ℓ2 norm of the activation over tokens. */
export const wandaScores = (
  config: ModelConfig,
  params: Params,
  batches: Iterable<CalibrationBatch>
): NeuronScores => {
  const { sums: squares, samples, tokens } = sumOverTokens(config, params, batches, tf.square)
  const perLayer = squares.map((sq, i) => {
    const norms = tf.tidy(() => tf.norm(params.layers[i].down.w, "euclidean", 1))
    const weightNorms = norms.dataSync()
    norms.dispose()
    return sq.map((s, j) => Math.sqrt(s) * weightNorms[j])
  })
  return { unit: "neurons", scorer: "wanda", perLayer, samples, tokens }
}

/**
 * First-order Taylor importance: for each batch the change of its mean next-token loss when a
 * neuron's activation is scaled to zero, to first order, |Σ_t a_t · ∂L/∂a_t|, summed over
 * batches. Exactly the derivative the finite difference d/dε L(down_proj column · (1 + ε))
 * measures.
 */
export const taylorScores = (
  config: ModelConfig,
  params: Params,
  batches: Iterable<CalibrationBatch>
): NeuronScores => {
  const scores = zeros(config)
  let samples = 0
  let tokens = 0
  for (const batch of batches) {
    const rows = batch.batchSize * (batch.seqLen - 1)
    tf.tidy(() => {
      const ids = idsTensor(batch)
      const weights = tf.tensor2d(batch.weights!, [batch.batchSize, batch.seqLen - 1])
      const offsets = config.layers.map((layer) => tf.zeros([rows, layer.intermediateSize]) as tf.Tensor2D)
      const acts: Array<tf.Tensor2D> = []
      const loss = (...offs: Array<tf.Tensor>) =>
        nextTokenLoss(config, params, ids, weights, {
          mlpOffsets: offs as Array<tf.Tensor2D>,
          observe: (i, name, act) => {
            if (name === "mlp.act") acts[i] = tf.keep(act)
          }
        })
      const grads = tf.grads(loss)(offsets)
      try {
        grads.forEach((grad, i) => {
          const s = tf.sum(tf.mul(acts[i], grad), 0).dataSync()
          const into = scores[i]
          for (let j = 0; j < into.length; j++) into[j] += Math.abs(s[j])
        })
      } finally {
        tf.dispose(acts)
      }
    })
    samples += batch.batchSize
    tokens += realTokens(batch, batch.seqLen - 1)
  }
  return { unit: "neurons", scorer: "taylor", perLayer: scores, samples, tokens }
}

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
const strongHits = (
  config: ModelConfig,
  params: Params,
  batches: Iterable<CalibrationBatch>,
  maxSamples: number,
  topN: ReadonlyArray<number>,
  positions: "last" | "all"
) => {
  const hits = zeros(config)
  let samples = 0
  let observations = 0
  let tokens = 0
  for (const full of batches) {
    if (samples >= maxSamples) break
    const batch = firstSequences(full, maxSamples - samples)
    const T = batch.seqLen
    const rows = positions === "last"
      ? batch.lengths.map((n, b) => b * T + n - 1)
      : batch.lengths.flatMap((n, b) => Array.from({ length: n }, (_, t) => b * T + t))
    observeBatch(config, params, batch, (i, name, act) => {
      if (name !== "mlp.act") return
      const k = Math.min(topN[i], act.shape[1])
      const top = tf.topk(tf.gather(act, tf.tensor1d(rows, "int32")), k)
      const indices = top.indices.dataSync()
      const values = top.values.dataSync()
      const into = hits[i]
      for (let r = 0; r < indices.length; r++) if (values[r] > 0) into[indices[r]] += 1
    })
    samples += batch.batchSize
    observations += rows.length
    tokens += realTokens(batch)
  }
  return { hits, samples, observations, tokens }
}

/**
 * The PTL reference scorer. Score of neuron j (higher = keep):
 *   2 · protected_j + taskFreq_j + generalFreq_j / (taskObservations + 1)
 * where taskFreq / generalFreq are the fractions of observed positions at which j was in the
 * top-n, and protected_j says j is among the `protectTop` neurons most often in the top-n on
 * general text (with at least one hit). Distinct task frequencies differ by at least
 * 1 / taskObservations, so the general term only breaks ties: the ranking is lexicographic
 * (protected, task frequency, general frequency), then by index in selection.
 */
export const contrastiveScores = (
  config: ModelConfig,
  params: Params,
  task: Iterable<CalibrationBatch>,
  general: Iterable<CalibrationBatch>,
  options: ContrastiveOptions = {}
): NeuronScores => {
  const topN = config.layers.map((layer) => Math.max(1, Math.floor(options.topN ?? Math.ceil(layer.intermediateSize / 10))))
  const positions = options.positions ?? contrastiveDefaults.positions
  const onTask = strongHits(config, params, task, options.taskSamples ?? contrastiveDefaults.taskSamples, topN, positions)
  const onGeneral = strongHits(
    config,
    params,
    general,
    options.generalSamples ?? contrastiveDefaults.generalSamples,
    topN,
    positions
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
  return {
    unit: "neurons",
    scorer: "contrastive",
    perLayer,
    samples: onTask.samples + onGeneral.samples,
    tokens: onTask.tokens + onGeneral.tokens,
    details: { taskFrequency: taskFreq, generalFrequency: generalFreq, protected: protectedMask }
  }
}
