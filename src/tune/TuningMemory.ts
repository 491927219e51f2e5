/**
 * How much device memory a tuning step needs, for full tuning and for adapter tuning, so that a
 * configuration that cannot fit is refused before any work with a message saying what would
 * fit (adapters, a smaller batch, another backend), instead of exhausting the wasm heap.
 *
 * Full AdamW tuning through the whole graph holds the weights, their gradients and two moments
 * (16 bytes per parameter), every block's activations for the backward pass, and the logits of
 * the batch with their softmax and gradient. Adapter tuning block by block holds the frozen
 * weights (all of them when the model is resident, one block when it is read from the shards),
 * the adapters with gradients and moments (16 bytes per adapter parameter), one block's
 * activations twice (the recomputed forward and its backward) and one chunk of logits.
 */
import { blockActivationBytes } from "../model/Blockwise.ts"
import { maxChunkLogits } from "../model/ChunkedLoss.ts"
import type { AdapterSpec } from "../model/Adapters.ts"
import { targetShape } from "../model/Adapters.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countParams } from "../model/Params.ts"

export interface TuningShape {
  readonly batchSize: number
  readonly seqLen: number
}

export interface TuningEstimate {
  readonly bytes: number
  /** What the bytes are made of, for the message. */
  readonly parts: Readonly<Record<string, number>>
}

const sum = (parts: Record<string, number>) => Object.values(parts).reduce((a, b) => a + b, 0)

/** Full AdamW tuning of every weight through the whole graph. */
export const fullTuningBytes = (config: ModelConfig, shape: TuningShape): TuningEstimate => {
  const P = countParams(config).total
  const { batchSize: B, seqLen: T } = shape
  const parts = {
    "weights, gradients and AdamW moments": 16 * P,
    "activations kept for the backward pass": config.layers.reduce((n, _, i) => n + blockActivationBytes(config, i, B, T), 0),
    "logits, softmax and their gradient": 3 * B * T * config.vocabSize * 4
  }
  return { bytes: sum(parts), parts }
}

/** Adapter parameters of a spec on a config. */
export const adapterParameters = (config: ModelConfig, spec: AdapterSpec): number =>
  config.layers.reduce((n, _, i) =>
    n + spec.targets.reduce((m, t) => {
      const [inDim, outDim] = targetShape(config, i, t)
      return m + spec.rank * (inDim + outDim)
    }, 0), 0)

/** Adapter tuning block by block; `resident` when the frozen weights are all on the device. */
export const adapterTuningBytes = (config: ModelConfig, shape: TuningShape, spec: AdapterSpec, resident: boolean): TuningEstimate => {
  const counts = countParams(config)
  const { batchSize: B, seqLen: T } = shape
  const largestBlock = Math.max(...config.layers.map((_, i) => blockActivationBytes(config, i, B, T)))
  const blockWeights = (counts.total - counts.embedding - counts.lmHead) / config.layers.length
  const parts = {
    "frozen weights": 4 * (resident ? counts.total : blockWeights),
    "adapters, gradients and AdamW moments": 16 * adapterParameters(config, spec),
    "one block's activations, forward and backward": 2 * largestBlock,
    "one chunk of logits": 3 * Math.min(maxChunkLogits, B * T * config.vocabSize) * 4
  }
  return { bytes: sum(parts), parts }
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`

/**
 * Why full tuning of this shape does not fit `budget`, with what would: adapters (resident or
 * block by block) or the largest batch size that fits; undefined when it fits.
 */
export const tuningAdvice = (config: ModelConfig, shape: TuningShape, budget: number, spec: AdapterSpec = { rank: 16, targets: ["q", "k", "v", "o", "gate", "up", "down"] }): string | undefined => {
  const full = fullTuningBytes(config, shape)
  if (full.bytes <= budget) return undefined
  const detail = Object.entries(full.parts).map(([k, v]) => `${k} ${gib(v)}`).join(", ")
  const options: Array<string> = []
  let smaller = shape.batchSize - 1
  while (smaller >= 1 && fullTuningBytes(config, { ...shape, batchSize: smaller }).bytes > budget) smaller--
  if (smaller >= 1) options.push(`a batch size of ${smaller} or less`)
  const resident = adapterTuningBytes(config, shape, spec, true)
  const streamed = adapterTuningBytes(config, shape, spec, false)
  if (resident.bytes <= budget) options.push(`adapters (rank ${spec.rank}: about ${gib(resident.bytes)})`)
  else if (streamed.bytes <= budget) options.push(`adapters with the weights read block by block (rank ${spec.rank}: about ${gib(streamed.bytes)})`)
  return `Full tuning needs about ${gib(full.bytes)} (${detail}), more than the ${gib(budget)} budget. ` +
    (options.length > 0 ? `What fits: ${options.join("; or ")}.` : "Nothing fits on this backend: use the tensorflow backend.")
}
