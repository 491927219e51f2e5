/**
 * How much device memory the work on a model takes at its peak, from its shape alone, so a plan
 * that cannot fit is refused before any work (DeviceMemory). Every figure is float32 bytes as the
 * tfjs engine counts them (`tf.memory().numBytes`); the constants were fitted to peaks measured
 * with `tf.profile` on the models of test/model/Footprint.test.ts, which checks them.
 */
import { Schema } from "effect"
import type { ModelConfig } from "./ModelConfig.ts"
import { countParams } from "./Params.ts"

const FLOAT = 4

/** A peak in bytes with its parts, so a refusal can say what takes the room. */
export interface Footprint {
  readonly bytes: number
  readonly parts: Readonly<Record<string, number>>
  /** What to lower to need less: the settings this estimate grows with, for a refusal. */
  readonly lower?: string
}

/** Work that would need more of the memory budget than is free (or than the whole budget). */
export class MemoryBudgetExceeded extends Schema.TaggedError<MemoryBudgetExceeded>()("MemoryBudgetExceeded", {
  what: Schema.String,
  requiredBytes: Schema.Number,
  budgetBytes: Schema.Number,
  availableBytes: Schema.Number,
  message: Schema.String
}) {}

export const footprint = (parts: Readonly<Record<string, number>>, lower?: string): Footprint => ({
  bytes: Object.values(parts).reduce((a, b) => a + b, 0),
  parts,
  ...(lower !== undefined ? { lower } : {})
})

/** The weights of a model. */
export const weightBytes = (config: ModelConfig): number => countParams(config).total * FLOAT

const widest = (config: ModelConfig) => ({
  I: Math.max(...config.layers.map((l) => l.intermediateSize), 0),
  H: Math.max(...config.layers.map((l) => l.numHeads), 0),
  KV: Math.max(...config.layers.map((l) => l.numKeyValueHeads), 0)
})

/**
 * Floats held at the peak of a pass over `batch` sequences of `seqLen` tokens, as a fitted
 * sum of what grows with tokens × layers (per hidden unit, MLP neuron and attention
 * projection), with the attention scores (heads × T² per sequence and layer), with the logits
 * (tokens × vocabulary) and with the weights. Fitted by least squares to peaks measured with
 * test/helpers/PeakMemory.ts on 11 shapes varying one dimension at a time, taking the larger of the
 * wasm and cpu coefficients; the fit's largest error was 3.4%.
 */
interface PassCoefficients {
  readonly hidden: number
  readonly mlp: number
  readonly projections: number
  readonly scores: number
  readonly logits: number
  readonly weights: number
}

/** A forward and backward pass: what the backward pass needs, plus the gradients it makes. */
const gradientPass: PassCoefficients = { hidden: 38, mlp: 11, projections: 8, scores: 6.4, logits: 10.2, weights: 1.1 }
/** A forward pass with nothing kept for a backward pass (scoring, perplexity). */
const forwardPass: PassCoefficients = { hidden: 10.5, mlp: 3.7, projections: 3.9, scores: 3.2, logits: 0.8, weights: 0.35 }
/** Decoding with a key/value cache to a total length of seqLen (prompt pass and every step). */
const decodingPass: PassCoefficients = { hidden: 5.2, mlp: 1.9, projections: 2, scores: 0.8, logits: 0.45, weights: 0.17 }

const passBytes = (c: PassCoefficients, config: ModelConfig, batch: number, seqLen: number): number => {
  const { I, H, KV } = widest(config)
  const L = config.layers.length
  const tokens = batch * seqLen
  const perToken = c.hidden * config.hiddenSize + c.mlp * I + c.projections * (H + 2 * KV) * config.headDim
  return FLOAT * (
    L * tokens * perToken + c.scores * L * batch * H * seqLen * seqLen + c.logits * tokens * config.vocabSize +
    c.weights * countParams(config).total
  )
}

/** The peak of computing the loss and gradients of a batch, above the weights. */
export const gradientBytes = (config: ModelConfig, batch: number, seqLen: number): number =>
  passBytes(gradientPass, config, batch, seqLen)

/** The peak of a forward pass keeping nothing for a backward pass, above the weights. */
export const forwardBytes = (config: ModelConfig, batch: number, seqLen: number): number =>
  passBytes(forwardPass, config, batch, seqLen)

/** The peak of decoding `batch` sequences to a total length of `maxLen`, above the weights. */
export const decodingBytes = (config: ModelConfig, batch: number, maxLen: number): number =>
  passBytes(decodingPass, config, batch, maxLen)

/**
 * One optimizer step of full fine-tuning with AdamW: the weights and the two moments live
 * throughout; on top, either the gradient pass, or during the update the gradients, their
 * clipped copy and the new weights (AdamW updates one tensor at a time, so its own temporaries
 * stay small).
 */
export const fullTuningFootprint = (config: ModelConfig, batch: number, seqLen: number): Footprint => {
  const w = weightBytes(config)
  return footprint({
    weights: w,
    "optimizer moments": 2 * w,
    "gradients and activations": Math.max(3 * w, gradientBytes(config, batch, seqLen))
  }, "Lower tuner.batchSize or tuner.maxSeqLen (each tuning step's activations grow with both), or tune through " +
    "low-rank adapters (tuner.adapter: { rank: 16 }: optimizer state for the adapters only, one block's activations at a time)")
}

/** "512 KiB", "3.2 MiB", "1.25 GiB": a size a person reads at a glance. */
export const formatBytes = (bytes: number): string =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${Math.ceil(bytes / 2 ** 10)} KiB`

/** "1.02 GiB (activations 1002.2 MiB, weights 3.8 MiB, ...)": the total and its parts, largest first. */
export const describeFootprint = (need: Footprint): string =>
  `${formatBytes(need.bytes)} (${
    Object.entries(need.parts)
      .filter(([, bytes]) => bytes > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([part, bytes]) => `${part} ${formatBytes(bytes)}`)
      .join(", ")
  })`
