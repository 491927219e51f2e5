/**
 * config.json for a model simmer creates from scratch (the bundled base model), with the keys
 * and defaults transformers' LlamaConfig / Qwen2Config write, so the folder loads there as is.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { HfConfig } from "./HfConfig.ts"

export interface SpecialTokenIds {
  readonly bos: number | undefined
  readonly eos: number | undefined
  readonly pad: number | undefined
}

export const newHfConfig = (config: ModelConfig, special: SpecialTokenIds): HfConfig => {
  const layer = config.layers[0]
  const common = {
    bos_token_id: special.bos ?? null,
    eos_token_id: special.eos ?? null,
    ...(special.pad !== undefined ? { pad_token_id: special.pad } : {}),
    hidden_act: "silu",
    hidden_size: config.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: layer.intermediateSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    num_attention_heads: layer.numHeads,
    num_hidden_layers: config.layers.length,
    num_key_value_heads: layer.numKeyValueHeads,
    rms_norm_eps: config.rmsNormEps,
    rope_scaling: null,
    rope_theta: config.ropeTheta,
    tie_word_embeddings: config.tieWordEmbeddings,
    torch_dtype: "float32",
    transformers_version: "4.48.3",
    use_cache: true,
    vocab_size: config.vocabSize
  }
  return config.architecture === "llama"
    ? {
      ...common,
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      attention_bias: config.qkvBias,
      attention_dropout: 0,
      head_dim: config.headDim,
      mlp_bias: config.mlpBias,
      pretraining_tp: 1
    }
    : {
      ...common,
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      attention_dropout: 0,
      max_window_layers: config.layers.length,
      sliding_window: null,
      use_sliding_window: false
    }
}
