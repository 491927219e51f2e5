/**
 * How simmer names and arranges a Hugging Face checkpoint folder, as transformers'
 * `save_pretrained` does: its file names, which tensors a checkpoint of each kind holds, their
 * order in the state_dict, how they are cut into shards, and file vs internal orientation
 * (Linear weights are stored [out, in], held [in, out]). No I/O here; see CheckpointReader and
 * CheckpointWriter.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { ParamSpec } from "../model/Params.ts"
import { decoderSpecs, paramSpecs } from "../model/Params.ts"
import { type HfConfig, labelCount, type ModelKind } from "./HfConfig.ts"

export const configFileName = "config.json"
export const generationConfigFileName = "generation_config.json"
export const singleWeightsFileName = "model.safetensors"
export const weightsIndexFileName = "model.safetensors.index.json"

/** Tokenizer files transformers' tokenizers read and save_pretrained writes; passed through unchanged. */
export const tokenizerFileNames: ReadonlyArray<string> = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "vocab.txt",
  "tokenizer.model",
  "chat_template.jinja",
  "chat_template.json"
]

/** transformers' default `max_shard_size` ("5GB" = 5·10^9 bytes). */
export const defaultMaxShardBytes = 5_000_000_000

/** The tensor name of a sequence classifier's head. */
export const scoreHeadName = "score.weight"

/** Every tensor of a checkpoint of this kind, its head included. */
export const checkpointSpecs = (config: ModelConfig, hf: HfConfig, kind: ModelKind): Array<ParamSpec> =>
  kind === "causal-lm" ? paramSpecs(config) : [
    ...decoderSpecs(config),
    {
      name: scoreHeadName,
      shape: [labelCount(hf), config.hiddenSize],
      transposed: true,
      get: () => {
        throw new Error("score.weight is not part of a causal LM's parameters")
      }
    }
  ]

/** A parameter's shape as Params hold it (Linear weights transposed). */
export const internalShape = (spec: ParamSpec): Array<number> =>
  spec.transposed ? [spec.shape[1], spec.shape[0]] : [...spec.shape]

export const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) =>
  a.length === b.length && a.every((d, i) => d === b[i])

export const shapeText = (shape: ReadonlyArray<number>) => `[${shape.join(", ")}]`

/** [rows, cols] → [cols, rows], in cache-friendly tiles. */
export const transpose2d = (data: Float32Array, rows: number, cols: number): Float32Array => {
  const out = new Float32Array(data.length)
  const tile = 32
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(r0 + tile, rows)
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(c0 + tile, cols)
      for (let r = r0; r < r1; r++) {
        const from = r * cols
        for (let c = c0; c < c1; c++) out[c * rows + r] = data[from + c]
      }
    }
  }
  return out
}

/**
 * Where transformers' state_dict puts each tensor: module registration order (embed_tokens;
 * per layer self_attn q, k, v, o, mlp gate, up, down, input_layernorm,
 * post_attention_layernorm; norm; lm_head), weight before bias. Shards are cut in this order.
 */
export const stateDictOrder = <T extends { readonly name: string }>(specs: ReadonlyArray<T>): Array<T> => {
  const withinLayer = [
    "self_attn.q_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.o_proj.weight",
    "self_attn.o_proj.bias",
    "mlp.gate_proj.weight",
    "mlp.gate_proj.bias",
    "mlp.up_proj.weight",
    "mlp.up_proj.bias",
    "mlp.down_proj.weight",
    "mlp.down_proj.bias",
    "input_layernorm.weight",
    "post_attention_layernorm.weight"
  ]
  const key = (name: string): [number, number, number] => {
    if (name === "model.embed_tokens.weight") return [0, 0, 0]
    const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(name)
    if (layer !== null) {
      const at = withinLayer.indexOf(layer[2])
      return [1, Number(layer[1]), at === -1 ? withinLayer.length : at]
    }
    if (name === "model.norm.weight") return [2, 0, 0]
    if (name === "lm_head.weight") return [3, 0, 0]
    return [4, 0, 0]
  }
  return [...specs].sort((a, b) => {
    const ka = key(a.name)
    const kb = key(b.name)
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2]
  })
}

export interface ShardPlan {
  readonly files: ReadonlyArray<{ readonly name: string; readonly tensors: ReadonlyArray<string> }>
  /** Sum of tensor bytes, as the index's metadata.total_size. */
  readonly totalSize: number
}

/**
 * huggingface_hub's `split_state_dict_into_shards_factory`: walk tensors in state_dict order,
 * start a new shard when the next tensor would push the current one past the limit, give a
 * tensor larger than the limit a shard of its own. One shard is `model.safetensors`; several
 * are `model-0000i-of-0000n.safetensors`.
 */
export const planShards = (
  tensors: ReadonlyArray<{ readonly name: string; readonly bytes: number }>,
  maxShardBytes: number
): ShardPlan => {
  const shards: Array<Array<string>> = []
  let current: Array<string> = []
  let currentSize = 0
  let totalSize = 0
  for (const t of tensors) {
    totalSize += t.bytes
    if (t.bytes > maxShardBytes) {
      shards.push([t.name])
      continue
    }
    if (currentSize + t.bytes > maxShardBytes) {
      shards.push(current)
      current = []
      currentSize = 0
    }
    current.push(t.name)
    currentSize += t.bytes
  }
  if (current.length > 0) shards.push(current)
  if (shards.length <= 1) return { files: [{ name: singleWeightsFileName, tensors: shards[0] ?? [] }], totalSize }
  const n = String(shards.length).padStart(5, "0")
  return {
    files: shards.map((tensors, i) => ({ name: `model-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`, tensors })),
    totalSize
  }
}
