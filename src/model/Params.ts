/**
 * The weights of a transformer as TensorFlow.js tensors, their Hugging Face names, random
 * initialisation and parameter counts.
 *
 * Linear weights are stored as [in, out], the transpose of PyTorch's [out, in], so that every
 * forward product is a plain 2-D `x @ w` (the only shape that reaches the fast wasm path).
 * Checkpoint I/O transposes at the boundary; `paramSpecs` says which tensors need it.
 */
import * as tf from "@tensorflow/tfjs"
import type { ModelConfig } from "./ModelConfig.ts"
import { Rng } from "./Rng.ts"

export interface Linear {
  readonly w: tf.Tensor2D // [in, out]
  readonly b?: tf.Tensor1D // [out]
  /** A low-rank adapter added to the product: y = x·w + scale·(x·a)·b (see Adapters.ts). */
  readonly lora?: LowRank
}

/** A low-rank update scale · a · b of an [in, out] weight: a [in, r], b [r, out]. */
export interface LowRank {
  readonly a: tf.Tensor2D
  readonly b: tf.Tensor2D
  readonly scale: number
}

export interface LayerParams {
  readonly inputNorm: tf.Tensor1D // [D]
  readonly q: Linear // [D, H*hd]
  readonly k: Linear // [D, KV*hd]
  readonly v: Linear // [D, KV*hd]
  readonly o: Linear // [H*hd, D]
  readonly postNorm: tf.Tensor1D // [D]
  readonly gate: Linear // [D, I]
  readonly up: Linear // [D, I]
  readonly down: Linear // [I, D]
}

export interface Params {
  readonly embed: tf.Tensor2D // [V, D]
  readonly layers: ReadonlyArray<LayerParams>
  readonly norm: tf.Tensor1D // [D]
  /** Absent when the LM head is tied to the embedding. */
  readonly lmHead?: Linear // [D, V]
}

/** One named tensor as Hugging Face stores it. */
export interface ParamSpec {
  readonly name: string
  /** Shape on disk (PyTorch orientation). */
  readonly shape: ReadonlyArray<number>
  /** True for Linear weights, stored here as the transpose of the file's tensor. */
  readonly transposed: boolean
  readonly get: (params: Params) => tf.Tensor
}

const linearSpecs = (
  prefix: string,
  inDim: number,
  outDim: number,
  bias: boolean,
  get: (params: Params) => Linear
): Array<ParamSpec> => {
  const specs: Array<ParamSpec> = [
    { name: `${prefix}.weight`, shape: [outDim, inDim], transposed: true, get: (p) => get(p).w }
  ]
  if (bias) {
    specs.push({
      name: `${prefix}.bias`,
      shape: [outDim],
      transposed: false,
      get: (p) => {
        const b = get(p).b
        if (b === undefined) throw new Error(`${prefix}.bias is missing from the parameters`)
        return b
      }
    })
  }
  return specs
}

/** Every tensor of a checkpoint for this config, in the order transformers writes them. */
export const paramSpecs = (config: ModelConfig): Array<ParamSpec> => {
  const D = config.hiddenSize
  const specs: Array<ParamSpec> = [
    { name: "model.embed_tokens.weight", shape: [config.vocabSize, D], transposed: false, get: (p) => p.embed }
  ]
  config.layers.forEach((layer, i) => {
    const at = `model.layers.${i}`
    const qDim = layer.numHeads * config.headDim
    const kvDim = layer.numKeyValueHeads * config.headDim
    const I = layer.intermediateSize
    specs.push(
      { name: `${at}.input_layernorm.weight`, shape: [D], transposed: false, get: (p) => p.layers[i].inputNorm },
      ...linearSpecs(`${at}.self_attn.q_proj`, D, qDim, config.qkvBias, (p) => p.layers[i].q),
      ...linearSpecs(`${at}.self_attn.k_proj`, D, kvDim, config.qkvBias, (p) => p.layers[i].k),
      ...linearSpecs(`${at}.self_attn.v_proj`, D, kvDim, config.qkvBias, (p) => p.layers[i].v),
      ...linearSpecs(`${at}.self_attn.o_proj`, qDim, D, config.outputBias, (p) => p.layers[i].o),
      {
        name: `${at}.post_attention_layernorm.weight`,
        shape: [D],
        transposed: false,
        get: (p) => p.layers[i].postNorm
      },
      ...linearSpecs(`${at}.mlp.gate_proj`, D, I, config.mlpBias, (p) => p.layers[i].gate),
      ...linearSpecs(`${at}.mlp.up_proj`, D, I, config.mlpBias, (p) => p.layers[i].up),
      ...linearSpecs(`${at}.mlp.down_proj`, I, D, config.mlpBias, (p) => p.layers[i].down)
    )
  })
  specs.push({ name: "model.norm.weight", shape: [D], transposed: false, get: (p) => p.norm })
  if (!config.tieWordEmbeddings) {
    specs.push(...linearSpecs("lm_head", D, config.vocabSize, false, (p) => {
      if (p.lmHead === undefined) throw new Error("lm_head is missing from the parameters of an untied model")
      return p.lmHead
    }))
  }
  return specs
}

/**
 * The decoder's tensors without the LM head: what a sequence classifier (reward model) shares
 * with a causal LM of the same config.
 */
export const decoderSpecs = (config: ModelConfig): Array<ParamSpec> =>
  paramSpecs(config).filter((spec) => !spec.name.startsWith("lm_head."))

/**
 * Builds Params from tensors looked up by Hugging Face name, already in internal orientation.
 * The inverse of `paramSpecs(...).map(get)`.
 */
export const assembleParams = (config: ModelConfig, byName: (name: string) => tf.Tensor): Params => ({
  embed: byName("model.embed_tokens.weight") as tf.Tensor2D,
  layers: config.layers.map((_, i) => assembleLayer(config, i, byName)),
  norm: byName("model.norm.weight") as tf.Tensor1D,
  ...(config.tieWordEmbeddings ? {} : { lmHead: { w: byName("lm_head.weight") as tf.Tensor2D } })
})

/** Decoder block i's LayerParams from tensors looked up by Hugging Face name (internal orientation). */
export const assembleLayer = (config: ModelConfig, i: number, byName: (name: string) => tf.Tensor): LayerParams => {
  const linear = (prefix: string, bias: boolean): Linear =>
    bias
      ? { w: byName(`${prefix}.weight`) as tf.Tensor2D, b: byName(`${prefix}.bias`) as tf.Tensor1D }
      : { w: byName(`${prefix}.weight`) as tf.Tensor2D }
  const at = `model.layers.${i}`
  return {
    inputNorm: byName(`${at}.input_layernorm.weight`) as tf.Tensor1D,
    q: linear(`${at}.self_attn.q_proj`, config.qkvBias),
    k: linear(`${at}.self_attn.k_proj`, config.qkvBias),
    v: linear(`${at}.self_attn.v_proj`, config.qkvBias),
    o: linear(`${at}.self_attn.o_proj`, config.outputBias),
    postNorm: byName(`${at}.post_attention_layernorm.weight`) as tf.Tensor1D,
    gate: linear(`${at}.mlp.gate_proj`, config.mlpBias),
    up: linear(`${at}.mlp.up_proj`, config.mlpBias),
    down: linear(`${at}.mlp.down_proj`, config.mlpBias)
  }
}

/** The specs of decoder block i's tensors. */
export const layerSpecs = (config: ModelConfig, i: number): Array<ParamSpec> =>
  paramSpecs(config).filter((spec) => spec.name.startsWith(`model.layers.${i}.`))

/** The tensors of one decoder block, each once. */
export const layerTensors = (layer: LayerParams): Array<tf.Tensor> =>
  [layer.inputNorm, layer.q, layer.k, layer.v, layer.o, layer.postNorm, layer.gate, layer.up, layer.down].flatMap((x) =>
    x instanceof tf.Tensor ? [x] : x.b === undefined ? [x.w] : [x.w, x.b])

/** All tensors of a Params, each once. */
export const paramTensors = (config: ModelConfig, params: Params): Array<tf.Tensor> =>
  paramSpecs(config).map((spec) => spec.get(params))

export const disposeParams = (config: ModelConfig, params: Params): void => {
  for (const t of paramTensors(config, params)) t.dispose()
}

/**
 * Random weights as transformers initialises them (normal with std `initStd`, norms at one,
 * biases at zero), drawn from a seeded generator so the same seed gives the same model on
 * every backend.
 */
export const initParams = (config: ModelConfig, seed: number, initStd = 0.02): Params => {
  const rng = Rng.seeded(seed)
  const tensors = new Map<string, tf.Tensor>()
  for (const spec of paramSpecs(config)) {
    const size = spec.shape.reduce((a, b) => a * b, 1)
    const values = new Float32Array(size)
    const isNorm = spec.name.endsWith("norm.weight")
    const isBias = spec.name.endsWith(".bias")
    if (isNorm) values.fill(1)
    else if (!isBias) for (let i = 0; i < size; i++) values[i] = rng.normal() * initStd
    const internalShape = spec.transposed ? [spec.shape[1], spec.shape[0]] : spec.shape
    tensors.set(spec.name, tf.tensor(values, internalShape as Array<number>, "float32"))
  }
  return assembleParams(config, (name) => tensors.get(name)!)
}

export interface ParamCounts {
  readonly embedding: number
  readonly attention: number
  readonly mlp: number
  readonly norms: number
  readonly lmHead: number
  readonly total: number
  /** Everything but the token embedding and an untied LM head: what pruning can shrink. */
  readonly nonEmbedding: number
}

/** Parameter counts per component, from the shapes alone. */
export const countParams = (config: ModelConfig): ParamCounts => {
  const D = config.hiddenSize
  let attention = 0
  let mlp = 0
  let norms = D
  for (const layer of config.layers) {
    const qDim = layer.numHeads * config.headDim
    const kvDim = layer.numKeyValueHeads * config.headDim
    attention += D * qDim + 2 * D * kvDim + qDim * D
    if (config.qkvBias) attention += qDim + 2 * kvDim
    if (config.outputBias) attention += D
    mlp += 3 * D * layer.intermediateSize
    if (config.mlpBias) mlp += 2 * layer.intermediateSize + D
    norms += 2 * D
  }
  const embedding = config.vocabSize * D
  const lmHead = config.tieWordEmbeddings ? 0 : config.vocabSize * D
  const total = embedding + attention + mlp + norms + lmHead
  return { embedding, attention, mlp, norms, lmHead, total, nonEmbedding: attention + mlp + norms }
}
