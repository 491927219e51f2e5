/**
 * The shape of a decoder-only transformer of the Llama / Qwen2 family, as simmer uses it
 * internally. Unlike a Hugging Face config, every layer carries its own MLP width and head
 * counts, because pruning may (on request) make layers differ.
 */

export type Architecture = "llama" | "qwen2"

export interface LayerShape {
  /** MLP width: rows of gate_proj/up_proj, columns of down_proj. */
  readonly intermediateSize: number
  /** Query heads; a multiple of numKeyValueHeads. */
  readonly numHeads: number
  readonly numKeyValueHeads: number
}

/**
 * Llama 3's RoPE frequency scaling: wavelengths longer than originalMaxPositionEmbeddings /
 * lowFreqFactor are divided by `factor`, shorter than .../highFreqFactor kept, and the band
 * between interpolated smoothly (transformers' `_compute_llama3_parameters`).
 */
export interface Llama3RopeScaling {
  readonly kind: "llama3"
  readonly factor: number
  readonly lowFreqFactor: number
  readonly highFreqFactor: number
  readonly originalMaxPositionEmbeddings: number
}

export interface ModelConfig {
  readonly architecture: Architecture
  readonly vocabSize: number
  readonly hiddenSize: number
  readonly headDim: number
  readonly layers: ReadonlyArray<LayerShape>
  readonly rmsNormEps: number
  readonly ropeTheta: number
  /** Llama 3.1+ frequency scaling of RoPE (rope_scaling.rope_type "llama3"); absent: plain RoPE. */
  readonly ropeScaling?: Llama3RopeScaling
  readonly maxPositionEmbeddings: number
  readonly tieWordEmbeddings: boolean
  /** Bias on q_proj, k_proj and v_proj (Qwen2 always; Llama when attention_bias). */
  readonly qkvBias: boolean
  /** Bias on o_proj (Llama's attention_bias also covers o_proj; Qwen2 never). */
  readonly outputBias: boolean
  /** Bias on gate_proj, up_proj and down_proj (Llama's mlp_bias). */
  readonly mlpBias: boolean
}

/** A config whose layers all have the same shape, the common case and the only one HF loads. */
export const uniformConfig = (
  base: Omit<ModelConfig, "layers">,
  layer: LayerShape & { readonly numLayers: number }
): ModelConfig => ({
  ...base,
  layers: Array.from({ length: layer.numLayers }, () => ({
    intermediateSize: layer.intermediateSize,
    numHeads: layer.numHeads,
    numKeyValueHeads: layer.numKeyValueHeads
  }))
})

/** Why a shape is not a legal transformer, or undefined when it is. */
export const shapeProblem = (config: ModelConfig): string | undefined => {
  const positive: Array<[string, number]> = [
    ["vocabSize", config.vocabSize],
    ["hiddenSize", config.hiddenSize],
    ["headDim", config.headDim],
    ["number of layers", config.layers.length]
  ]
  for (const [name, value] of positive) {
    if (!Number.isInteger(value) || value <= 0) return `${name} must be a positive integer, got ${value}`
  }
  if (config.headDim % 2 !== 0) return `headDim must be even for rotary embeddings, got ${config.headDim}`
  for (const [i, layer] of config.layers.entries()) {
    if (!Number.isInteger(layer.intermediateSize) || layer.intermediateSize <= 0) {
      return `layer ${i}: intermediate size must be a positive integer, got ${layer.intermediateSize}`
    }
    if (!Number.isInteger(layer.numKeyValueHeads) || layer.numKeyValueHeads <= 0) {
      return `layer ${i}: key/value heads must be a positive integer, got ${layer.numKeyValueHeads}`
    }
    if (!Number.isInteger(layer.numHeads) || layer.numHeads <= 0 || layer.numHeads % layer.numKeyValueHeads !== 0) {
      return `layer ${i}: query heads (${layer.numHeads}) must be a positive multiple of key/value heads (${layer.numKeyValueHeads})`
    }
  }
  return undefined
}

/** True when every layer has the same shape, i.e. a plain Hugging Face config describes it. */
export const isUniform = (config: ModelConfig): boolean =>
  config.layers.every((layer) =>
    layer.intermediateSize === config.layers[0].intermediateSize &&
    layer.numHeads === config.layers[0].numHeads &&
    layer.numKeyValueHeads === config.layers[0].numKeyValueHeads
  )
