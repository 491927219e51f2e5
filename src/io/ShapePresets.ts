/**
 * The config.json of real checkpoints users bring, as published with each model (values copied
 * from the public config files), so that simmer can be tested and measured at their sizes
 * without downloading their weights: `writeRandomCheckpoint` fills such a config with random
 * weights. Only the shapes matter; the weights are noise.
 */
import type { HfConfig } from "./HfConfig.ts"

export const shapePresetNames = ["smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b"] as const
export type ShapePresetName = (typeof shapePresetNames)[number]

const qwen25 = {
  architectures: ["Qwen2ForCausalLM"],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: "silu",
  initializer_range: 0.02,
  model_type: "qwen2",
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  transformers_version: "4.40.1",
  use_cache: true,
  use_mrope: false,
  use_sliding_window: false,
  vocab_size: 151936
} as const

export const shapePresets: Readonly<Record<ShapePresetName, HfConfig>> = {
  // HuggingFaceTB/SmolLM2-135M
  "smollm2-135m": {
    architectures: ["LlamaForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 0,
    eos_token_id: 0,
    hidden_act: "silu",
    hidden_size: 576,
    initializer_range: 0.041666666666666664,
    intermediate_size: 1536,
    is_llama_config: true,
    max_position_embeddings: 8192,
    mlp_bias: false,
    model_type: "llama",
    num_attention_heads: 9,
    num_hidden_layers: 30,
    num_key_value_heads: 3,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_interleaved: false,
    rope_scaling: null,
    rope_theta: 100000,
    tie_word_embeddings: true,
    torch_dtype: "bfloat16",
    transformers_version: "4.42.3",
    use_cache: true,
    vocab_size: 49152
  },
  // Qwen/Qwen2.5-0.5B
  "qwen2.5-0.5b": {
    ...qwen25,
    hidden_size: 896,
    intermediate_size: 4864,
    max_position_embeddings: 32768,
    max_window_layers: 24,
    num_attention_heads: 14,
    num_hidden_layers: 24,
    num_key_value_heads: 2,
    sliding_window: 32768
  },
  // meta-llama/Llama-3.2-1B
  "llama-3.2-1b": {
    architectures: ["LlamaForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 128000,
    eos_token_id: 128001,
    head_dim: 64,
    hidden_act: "silu",
    hidden_size: 2048,
    initializer_range: 0.02,
    intermediate_size: 8192,
    max_position_embeddings: 131072,
    mlp_bias: false,
    model_type: "llama",
    num_attention_heads: 32,
    num_hidden_layers: 16,
    num_key_value_heads: 8,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: {
      factor: 32.0,
      high_freq_factor: 4.0,
      low_freq_factor: 1.0,
      original_max_position_embeddings: 8192,
      rope_type: "llama3"
    },
    rope_theta: 500000.0,
    tie_word_embeddings: true,
    torch_dtype: "bfloat16",
    transformers_version: "4.45.0.dev0",
    use_cache: true,
    vocab_size: 128256
  },
  // Qwen/Qwen2.5-1.5B
  "qwen2.5-1.5b": {
    ...qwen25,
    hidden_size: 1536,
    intermediate_size: 8960,
    max_position_embeddings: 131072,
    max_window_layers: 28,
    num_attention_heads: 12,
    num_hidden_layers: 28,
    num_key_value_heads: 2,
    sliding_window: 131072
  }
}

export const isShapePreset = (name: string): name is ShapePresetName =>
  (shapePresetNames as ReadonlyArray<string>).includes(name)
