/**
 * Helpers for the io tests: temporary folders, hand-built safetensors bytes (independent of
 * the writer under test), tiny model configs and config.json objects laid out the way
 * transformers 4.48 writes them for Llama and Qwen2.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import { tinyConfig as sharedTinyConfig } from "../helpers/backend.ts"
import { assembleParams, type Params, paramSpecs } from "../../src/model/Params.ts"

/** The transformers-written fixture (test/fixtures/hf-llama-gqa-f32, see its README). */
export const fixtureDir = join(import.meta.dirname, "../fixtures/hf-llama-gqa-f32")

/** A fresh temporary folder, removed when the test's Scope closes. */
export const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-io-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** Copy of the transformers fixture in a writable folder. */
export const fixtureCopy = Effect.gen(function*() {
  const dir = join(yield* tempDir, "ckpt")
  yield* Effect.promise(() => cp(fixtureDir, dir, { recursive: true }))
  // The fixture files are read-only; the tests rewrite some of them.
  yield* Effect.promise(async () => {
    const { chmod, readdir } = await import("node:fs/promises")
    await chmod(dir, 0o755)
    for (const f of await readdir(dir)) await chmod(join(dir, f), 0o644)
  })
  return dir
})

export const writeBytes = (path: string, bytes: Uint8Array | string) => Effect.promise(() => writeFile(path, bytes))
export const readBytes = (path: string) => Effect.promise(() => readFile(path))
export const readText = (path: string) => Effect.promise(() => readFile(path, "utf8"))
export const readJson = (path: string) => Effect.map(readText(path), (t) => JSON.parse(t) as Record<string, unknown>)

/**
 * A safetensors file from a header object (or raw header text) and data bytes: 8-byte
 * little-endian length, header, data. `declaredLength` overrides the length prefix.
 */
export const rawSafetensors = (header: object | string, data: Uint8Array, declaredLength?: bigint): Uint8Array => {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}

/** Little-endian float32 bytes of `values`, through DataView. */
export const f32Bytes = (values: ReadonlyArray<number>): Uint8Array => {
  const out = new Uint8Array(values.length * 4)
  const view = new DataView(out.buffer)
  values.forEach((v, i) => view.setFloat32(i * 4, v, true))
  return out
}

/** A 2-layer model small enough to write in milliseconds. */
export const tinyConfig = (overrides: Partial<ModelConfig> = {}): ModelConfig =>
  sharedTinyConfig({ vocabSize: 11, hiddenSize: 8, rmsNormEps: 1e-6, ...overrides }, { intermediateSize: 12, numHeads: 2, numKeyValueHeads: 1 })

/** config.json of a Qwen2ForCausalLM as transformers 4.48 `save_pretrained` writes it (every Qwen2Config key). */
export const qwen2ConfigJson = (c: ModelConfig, torchDtype: string): Record<string, unknown> => ({
  architectures: ["Qwen2ForCausalLM"],
  attention_dropout: 0.0,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: "silu",
  hidden_size: c.hiddenSize,
  initializer_range: 0.02,
  intermediate_size: c.layers[0].intermediateSize,
  max_position_embeddings: c.maxPositionEmbeddings,
  max_window_layers: c.layers.length,
  model_type: "qwen2",
  num_attention_heads: c.layers[0].numHeads,
  num_hidden_layers: c.layers.length,
  num_key_value_heads: c.layers[0].numKeyValueHeads,
  rms_norm_eps: c.rmsNormEps,
  rope_scaling: null,
  rope_theta: c.ropeTheta,
  sliding_window: null,
  tie_word_embeddings: c.tieWordEmbeddings,
  torch_dtype: torchDtype,
  transformers_version: "4.48.3",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: c.vocabSize
})

/** config.json of a LlamaForCausalLM as transformers 4.48 writes it (the fixture's key set). */
export const llamaConfigJson = (c: ModelConfig, torchDtype: string): Record<string, unknown> => ({
  architectures: ["LlamaForCausalLM"],
  attention_bias: c.qkvBias,
  attention_dropout: 0.0,
  bos_token_id: 1,
  eos_token_id: 2,
  head_dim: c.headDim,
  hidden_act: "silu",
  hidden_size: c.hiddenSize,
  initializer_range: 0.02,
  intermediate_size: c.layers[0].intermediateSize,
  max_position_embeddings: c.maxPositionEmbeddings,
  mlp_bias: c.mlpBias,
  model_type: "llama",
  num_attention_heads: c.layers[0].numHeads,
  num_hidden_layers: c.layers.length,
  num_key_value_heads: c.layers[0].numKeyValueHeads,
  pretraining_tp: 1,
  rms_norm_eps: c.rmsNormEps,
  rope_scaling: null,
  rope_theta: c.ropeTheta,
  tie_word_embeddings: c.tieWordEmbeddings,
  torch_dtype: torchDtype,
  transformers_version: "4.48.3",
  use_cache: true,
  vocab_size: c.vocabSize
})

/** Parses a safetensors file by hand: header object and data section. */
export const splitSafetensors = (bytes: Uint8Array): { header: Record<string, any>; data: Uint8Array } => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const n = Number(view.getBigUint64(0, true))
  return {
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))),
    data: bytes.subarray(8 + n)
  }
}

/** Rewrites a safetensors file's header (data section unchanged), optionally appending data. */
export const editSafetensors = (
  path: string,
  edit: (header: Record<string, any>, dataSize: number) => Record<string, any>,
  appendData: Uint8Array = new Uint8Array(0)
) =>
  Effect.gen(function*() {
    const { header, data } = splitSafetensors(yield* readBytes(path))
    const joined = new Uint8Array(data.length + appendData.length)
    joined.set(data)
    joined.set(appendData, data.length)
    yield* writeBytes(path, rawSafetensors(edit(header, data.length), joined))
  })

/** Every tensor of `config` filled with distinct pseudo-random values (biases included). */
export const randomParams = (config: ModelConfig, seed: number): Params => {
  let state = seed >>> 0
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32 - 0.5
  }
  const tensors = new Map<string, tf.Tensor>()
  for (const spec of paramSpecs(config)) {
    const size = spec.shape.reduce((a, b) => a * b, 1)
    const values = Float32Array.from({ length: size }, next)
    const shape = spec.transposed ? [spec.shape[1], spec.shape[0]] : [...spec.shape]
    tensors.set(spec.name, tf.tensor(values, shape, "float32"))
  }
  return assembleParams(config, (name) => tensors.get(name)!)
}
