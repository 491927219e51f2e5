/**
 * genai_config.json, the file ONNX Runtime GenAI (`onnxruntime_genai.Model(folder)`) reads to
 * drive generation with a decoder: its type, sizes, the names of its inputs and outputs, and
 * greedy search defaults. GenAI sizes every layer's cache with one set of head counts, so a
 * model whose layers differ in head counts (`layer_shapes` after pruning key/value groups) gets
 * none; layers that differ only in MLP width do not matter to it. The exported graph
 * concatenates its cache (present = past + new), hence `past_present_share_buffer: false`.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import { modelFileName } from "./OnnxFile.ts"

export const genaiConfigFileName = "genai_config.json"

export interface SpecialTokens {
  readonly bos?: number | ReadonlyArray<number> | undefined
  readonly eos?: number | ReadonlyArray<number> | undefined
  readonly pad?: number | undefined
}

/** True when every layer has the same query and key/value head counts (one cache shape for all). */
export const sameHeadCounts = (config: ModelConfig): boolean =>
  config.layers.every((l) => l.numHeads === config.layers[0].numHeads && l.numKeyValueHeads === config.layers[0].numKeyValueHeads)

export const genaiConfig = (config: ModelConfig, tokens: SpecialTokens): unknown => {
  if (!sameHeadCounts(config)) return undefined
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
