/**
 * Device memory of adapter tuning, beside full tuning's (model/Footprint.ts), and the advice a
 * refusal gives: adapters, a smaller batch, or another backend.
 *
 * Adapter tuning block by block holds the frozen weights (all of them when the model is
 * resident, one block when it is read from the shards), the adapters with their gradients and
 * two moments (16 bytes per adapter parameter), one block's activations twice (the recomputed
 * forward and its backward) and one chunk of logits with its softmax and gradient.
 */
import type { AdapterSpec } from "../model/Adapters.ts"
import { targetShape } from "../model/Adapters.ts"
import { blockActivationBytes } from "../model/Blockwise.ts"
import { maxChunkLogits } from "../model/ChunkedLoss.ts"
import { type Footprint, footprint, fullTuningFootprint, formatBytes, weightBytes } from "../model/Footprint.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countParams } from "../model/Params.ts"

/** Adapter parameters of a spec on a config: rank × (in + out) per adapted projection. */
export const adapterParameters = (config: ModelConfig, spec: AdapterSpec): number =>
  config.layers.reduce((n, _, i) =>
    n + spec.targets.reduce((m, t) => {
      const [inDim, outDim] = targetShape(config, i, t)
      return m + spec.rank * (inDim + outDim)
    }, 0), 0)

/** Adapter tuning of batches of `batch` × `seqLen` tokens; `resident` when every frozen weight is on the device. */
export const adapterTuningFootprint = (
  config: ModelConfig,
  batch: number,
  seqLen: number,
  spec: AdapterSpec,
  resident = true
): Footprint => {
  const counts = countParams(config)
  const largestBlock = Math.max(...config.layers.map((_, i) => blockActivationBytes(config, i, batch, seqLen)))
  const blockWeights = 4 * (counts.total - counts.embedding - counts.lmHead) / config.layers.length
  return footprint({
    "frozen weights": resident ? weightBytes(config) : blockWeights,
    "adapters, gradients and AdamW moments": 16 * adapterParameters(config, spec),
    "one block's activations, forward and backward": 2 * largestBlock,
    "one chunk of logits": 3 * Math.min(maxChunkLogits, batch * seqLen * config.vocabSize) * 4
  }, "Lower tuner.batchSize or tuner.maxSeqLen (one block's activations grow with both), or tuner.adapter.rank")
}

export const defaultAdapterSpec: AdapterSpec = { rank: 16, targets: ["q", "k", "v", "o", "gate", "up", "down"] }

/**
 * Why full tuning of this shape does not fit `budget`, with what would: the largest batch size
 * that fits, or adapters (resident, or with the weights read block by block); undefined when it
 * fits.
 */
export const tuningAdvice = (
  config: ModelConfig,
  batch: number,
  seqLen: number,
  budget: number,
  spec: AdapterSpec = defaultAdapterSpec
): string | undefined => {
  const full = fullTuningFootprint(config, batch, seqLen)
  if (full.bytes <= budget) return undefined
  const options: Array<string> = []
  let smaller = batch - 1
  while (smaller >= 1 && fullTuningFootprint(config, smaller, seqLen).bytes > budget) smaller--
  if (smaller >= 1) options.push(`tuner.batchSize ${smaller} or less`)
  const resident = adapterTuningFootprint(config, batch, seqLen, spec, true)
  const streamed = adapterTuningFootprint(config, batch, seqLen, spec, false)
  const adapter = `tuner.adapter: { rank: ${spec.rank}, targets: [${spec.targets.join(", ")}] }`
  if (resident.bytes <= budget) options.push(`adapters (${adapter}: about ${formatBytes(resident.bytes)})`)
  else if (streamed.bytes <= budget) options.push(`adapters with the frozen weights read block by block (about ${formatBytes(streamed.bytes)})`)
  return `Full tuning needs about ${formatBytes(full.bytes)}, more than the ${formatBytes(budget)} budget. ` +
    (options.length > 0 ? `What fits: ${options.join("; or ")}.` : "Nothing fits on this backend: use the tensorflow backend.")
}
