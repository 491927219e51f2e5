/**
 * genai_config.json, the file ONNX Runtime GenAI (`onnxruntime_genai.Model(folder)`) reads to
 * drive generation with a decoder: its type, sizes, the names of its inputs and outputs, and
 * greedy search defaults. GenAI describes every layer with one set of head counts, so a model
 * whose layers differ (`layer_shapes`) gets none. The exported graph concatenates its cache
 * (present = past + new), hence `past_present_share_buffer: false`.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import { isUniform } from "../model/ModelConfig.ts"
import { modelFileName } from "./OnnxFile.ts"

export const genaiConfigFileName = "genai_config.json"

export interface SpecialTokens {
  readonly bos?: number | ReadonlyArray<number> | undefined
  readonly eos?: number | ReadonlyArray<number> | undefined
  readonly pad?: number | undefined
}

export const genaiConfig = (config: ModelConfig, tokens: SpecialTokens): unknown => {
  if (!isUniform(config)) return undefined
  const layer = config.layers[0]
  return {
    model: {
      type: config.architecture,
      ...(tokens.bos !== undefined ? { bos_token_id: tokens.bos } : {}),
      ...(tokens.eos !== undefined ? { eos_token_id: tokens.eos } : {}),
      ...(tokens.pad !== undefined ? { pad_token_id: tokens.pad } : {}),
      context_length: config.maxPositionEmbeddings,
      vocab_size: config.vocabSize,
      decoder: {
        session_options: { log_id: "onnxruntime-genai", provider_options: [] },
        filename: modelFileName,
        head_size: config.headDim,
        hidden_size: config.hiddenSize,
        num_attention_heads: layer.numHeads,
        num_key_value_heads: layer.numKeyValueHeads,
        num_hidden_layers: config.layers.length,
        inputs: {
          input_ids: "input_ids",
          attention_mask: "attention_mask",
          position_ids: "position_ids",
          past_key_names: "past_key_values.%d.key",
          past_value_names: "past_key_values.%d.value"
        },
        outputs: {
          logits: "logits",
          present_key_names: "present.%d.key",
          present_value_names: "present.%d.value"
        }
      }
    },
    search: {
      do_sample: false,
      num_beams: 1,
      num_return_sequences: 1,
      max_length: config.maxPositionEmbeddings,
      past_present_share_buffer: false
    }
  }
}
