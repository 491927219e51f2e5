import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  decodeHfConfig,
  formatConfigJson,
  parseHfConfig,
  readHfConfig,
  toHfConfigJson,
  toModelConfig
} from "../../src/io/HfConfig.ts"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import { fixtureDir, qwen2ConfigJson, readText, tinyConfig } from "./_support.ts"

const fixtureConfig = join(fixtureDir, "config.json")
const path = "/models/x/config.json"

const minimalLlama = {
  model_type: "llama",
  architectures: ["LlamaForCausalLM"],
  vocab_size: 32,
  hidden_size: 16,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4
}

describe("decoding config.json", () => {
  it.effect("the transformers fixture becomes the model its README describes", () =>
    Effect.gen(function*() {
      const hf = yield* readHfConfig(fixtureConfig)
      const config = toModelConfig(hf)
      const expected: ModelConfig = {
        architecture: "llama",
        vocabSize: 96,
        hiddenSize: 64,
        headDim: 8,
        layers: [0, 1, 2].map(() => ({ intermediateSize: 176, numHeads: 8, numKeyValueHeads: 2 })),
        rmsNormEps: 1e-5,
        ropeTheta: 10000,
        maxPositionEmbeddings: 256,
        tieWordEmbeddings: false,
        qkvBias: false,
        outputBias: false,
        mlpBias: false
      }
      assert.deepStrictEqual(config, expected)
      // Keys simmer does not use are kept for writing back.
      assert.strictEqual(hf.pretraining_tp, 1)
      assert.strictEqual(hf.transformers_version, "4.48.3")
      assert.strictEqual(hf.use_cache, true)
    }))

  it.effect("absent optional fields take transformers' class defaults", () =>
    Effect.gen(function*() {
      const llama = toModelConfig(yield* decodeHfConfig({ ...minimalLlama, custom: { keep: [1, 2] } }, path))
      assert.strictEqual(llama.headDim, 4)
      assert.deepStrictEqual(llama.layers[1], { intermediateSize: 40, numHeads: 4, numKeyValueHeads: 4 })
      assert.strictEqual(llama.rmsNormEps, 1e-6)
      assert.strictEqual(llama.ropeTheta, 10000)
      assert.strictEqual(llama.maxPositionEmbeddings, 2048)
      assert.isFalse(llama.tieWordEmbeddings)
      assert.isFalse(llama.qkvBias || llama.outputBias || llama.mlpBias)
      const qwenJson = { ...minimalLlama, model_type: "qwen2", architectures: ["Qwen2ForCausalLM"], num_key_value_heads: null }
      const qwen = toModelConfig(yield* decodeHfConfig(qwenJson, path))
      assert.strictEqual(qwen.maxPositionEmbeddings, 32768)
      assert.strictEqual(qwen.layers[0].numKeyValueHeads, 4)
      assert.deepStrictEqual([qwen.qkvBias, qwen.outputBias, qwen.mlpBias], [true, false, false])
    }))

  it.effect("Llama attention_bias covers q/k/v/o, mlp_bias the MLP; head_dim overrides hidden/heads", () =>
    Effect.gen(function*() {
      const c = toModelConfig(yield* decodeHfConfig({ ...minimalLlama, attention_bias: true, mlp_bias: true, head_dim: 6 }, path))
      assert.deepStrictEqual([c.qkvBias, c.outputBias, c.mlpBias, c.headDim], [true, true, true, 6])
    }))

  it.effect("transformers 5 keys: dtype and rope_parameters", () =>
    Effect.gen(function*() {
      const hf = yield* decodeHfConfig({ ...minimalLlama, dtype: "bfloat16", rope_parameters: { rope_type: "default", rope_theta: 500000.0 } }, path)
      assert.strictEqual(toModelConfig(hf).ropeTheta, 500000)
    }))

  it.effect("a config failing the Schema is InvalidConfig listing every path", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decodeHfConfig({
        model_type: "llama",
        architectures: [1],
        vocab_size: "96",
        hidden_size: -1,
        num_hidden_layers: 2.5,
        num_attention_heads: 4,
        tie_word_embeddings: "no",
        rms_norm_eps: 0
      }, path))
      assert.strictEqual(error._tag, "InvalidConfig")
      assert.include(error.message, path)
      for (const fragment of [
        "architectures[0]: Expected string, got 1",
        "vocab_size: Expected number, got \"96\"",
        "hidden_size: Expected a value greater than 0, got -1",
        "intermediate_size: Missing key",
        "num_hidden_layers: Expected an integer, got 2.5",
        "tie_word_embeddings: Expected boolean, got \"no\"",
        "rms_norm_eps: Expected a value greater than 0, got 0",
        "(7 problems)"
      ]) assert.include(error.message, fragment)
      assert.notInclude(error.message, "\n")
    }))

  it.effect("text that is not JSON is InvalidConfig", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(parseHfConfig("{\"model_type\": \"llama\",", path))
      assert.strictEqual(error._tag, "InvalidConfig")
      assert.include(error.message, `${path} is not valid JSON`)
    }))

  it.effect("other architectures are UnsupportedModel, even when other fields are off", () =>
    Effect.gen(function*() {
      const mistral = yield* Effect.flip(decodeHfConfig({ model_type: "mistral", architectures: ["MistralForCausalLM"], sliding_window: 4096 }, path))
      assert.strictEqual(mistral._tag, "UnsupportedModel")
      assert.include(mistral.message, "model_type \"mistral\"")
      assert.include(mistral.message, "MistralForCausalLM")
      const base = yield* Effect.flip(decodeHfConfig({ ...minimalLlama, architectures: ["LlamaModel"] }, path))
      assert.strictEqual(base._tag, "UnsupportedModel")
      const crossed = yield* Effect.flip(decodeHfConfig({ ...minimalLlama, architectures: ["Qwen2ForCausalLM"] }, path))
      assert.strictEqual(crossed._tag, "UnsupportedModel")
    }))

  it.effect("features simmer does not implement are UnsupportedModel", () =>
    Effect.gen(function*() {
      const variants: Array<[Record<string, unknown>, string]> = [
        [{ hidden_act: "gelu" }, "hidden_act is \"gelu\""],
        [{ rope_scaling: { type: "linear", factor: 2.0 } }, "rope_scaling"],
        [{ rope_scaling: { rope_type: "llama3", factor: 8.0 } }, "llama3"],
        [{ rope_parameters: { rope_type: "yarn", rope_theta: 1e6 } }, "rope_parameters"],
        [{ model_type: "qwen2", architectures: ["Qwen2ForCausalLM"], use_sliding_window: true }, "sliding-window"],
        [{ layer_types: ["full_attention", "sliding_attention"] }, "layer_types"],
        [{ quantization_config: { quant_method: "gptq" } }, "quantized"]
      ]
      for (const [change, fragment] of variants) {
        const error = yield* Effect.flip(decodeHfConfig({ ...minimalLlama, ...change }, path))
        assert.strictEqual(error._tag, "UnsupportedModel", JSON.stringify(change))
        assert.include(error.message, fragment)
        assert.include(error.message, path)
      }
      // Plain RoPE spelled out explicitly is fine.
      yield* decodeHfConfig({ ...minimalLlama, rope_scaling: { rope_type: "default" } }, path)
    }))

  it.effect("a torch_dtype that is not a float type is UnsupportedDtype", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decodeHfConfig({ ...minimalLlama, torch_dtype: "int8" }, path))
      assert.strictEqual(error._tag, "UnsupportedDtype")
      assert.include(error.message, "torch_dtype \"int8\"")
      assert.include(error.message, path)
    }))

  it.effect("head counts that do not divide are InvalidConfig", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(decodeHfConfig({ ...minimalLlama, num_key_value_heads: 3 }, path))
      assert.strictEqual(error._tag, "InvalidConfig")
      assert.include(error.message, "multiple of num_key_value_heads (3)")
    }))
})

describe("writing config.json", () => {
  it.effect("an unchanged model gives back the fixture's config.json byte for byte", () =>
    Effect.gen(function*() {
      const hf = yield* readHfConfig(fixtureConfig)
      const json = yield* toHfConfigJson(toModelConfig(hf), hf, "F32")
      assert.strictEqual(formatConfigJson(json), yield* readText(fixtureConfig))
    }))

  it.effect("pruning changes exactly the keys it must", () =>
    Effect.gen(function*() {
      const hf = yield* readHfConfig(fixtureConfig)
      const base = toModelConfig(hf)
      const pruned: ModelConfig = {
        ...base,
        layers: base.layers.slice(0, 2).map(() => ({ intermediateSize: 128, numHeads: 4, numKeyValueHeads: 2 }))
      }
      const json = yield* toHfConfigJson(pruned, hf, "BF16")
      const changed = Object.keys(json).filter((k) => JSON.stringify(json[k]) !== JSON.stringify((hf as Record<string, unknown>)[k]))
      assert.deepStrictEqual(changed.sort(), ["intermediate_size", "num_attention_heads", "num_hidden_layers", "torch_dtype"])
      assert.deepStrictEqual(
        [json.intermediate_size, json.num_attention_heads, json.num_hidden_layers, json.torch_dtype, json.head_dim],
        [128, 4, 2, "bfloat16", 8]
      )
      assert.deepStrictEqual(Object.keys(json).sort(), Object.keys(hf).sort())
    }))

  it.effect("head_dim is added when pruned heads no longer imply it", () =>
    Effect.gen(function*() {
      const c = tinyConfig({ architecture: "qwen2", qkvBias: true })
      const hf = yield* decodeHfConfig(qwen2ConfigJson(c, "float32"), path)
      assert.notProperty(hf, "head_dim")
      const same = yield* toHfConfigJson(c, hf, "F32")
      assert.notProperty(same, "head_dim")
      const pruned = { ...c, layers: c.layers.map((l) => ({ ...l, numHeads: 1 })) }
      const json = yield* toHfConfigJson(pruned, hf, "F32")
      // 8 // 1 = 8 would be wrong: the heads are still 4 wide.
      assert.strictEqual(json.head_dim, 4)
      assert.strictEqual(json.num_attention_heads, 1)
      assert.strictEqual(toModelConfig(yield* decodeHfConfig(json, path)).headDim, 4)
    }))

  it.effect("layer_types follows the layer count; a dtype-only config keeps using dtype", () =>
    Effect.gen(function*() {
      const hf = yield* decodeHfConfig({ ...minimalLlama, dtype: "float32", layer_types: ["full_attention", "full_attention"] }, path)
      const config = toModelConfig(hf)
      const json = yield* toHfConfigJson({ ...config, layers: config.layers.slice(1) }, hf, "F16")
      assert.deepStrictEqual(json.layer_types, ["full_attention"])
      assert.strictEqual(json.dtype, "float16")
      assert.notProperty(json, "torch_dtype")
    }))

  it.effect("layers of different shapes are recorded in layer_shapes, the widest in the scalar keys, and read back", () =>
    Effect.gen(function*() {
      const hf = yield* readHfConfig(fixtureConfig)
      const base = toModelConfig(hf)
      const ragged: ModelConfig = {
        ...base,
        layers: base.layers.map((l, i) => ({ ...l, intermediateSize: 100 + i, numHeads: i === 0 ? 2 : 4, numKeyValueHeads: i === 0 ? 1 : 2 }))
      }
      const json = yield* toHfConfigJson(ragged, hf, "F32", path)
      assert.deepStrictEqual(json.layer_shapes, ragged.layers.map((l) => ({
        intermediate_size: l.intermediateSize,
        num_attention_heads: l.numHeads,
        num_key_value_heads: l.numKeyValueHeads
      })))
      assert.strictEqual(json.intermediate_size, 100 + base.layers.length - 1)
      assert.strictEqual(json.num_attention_heads, 4)
      assert.strictEqual(json.num_key_value_heads, 2)
      // Through the file format and back.
      const reread = toModelConfig(yield* parseHfConfig(formatConfigJson(json), path))
      assert.deepStrictEqual(reread.layers, ragged.layers)
      assert.strictEqual(reread.headDim, base.headDim)
      // Once the layers agree again, the extension key goes away.
      const uniform = yield* toHfConfigJson(base, yield* decodeHfConfig(json, path), "F32", path)
      assert.notProperty(uniform, "layer_shapes")
      assert.strictEqual(uniform.intermediate_size, base.layers[0].intermediateSize)
    }))

  it.effect("layer_shapes must have one legal entry per layer", () =>
    Effect.gen(function*() {
      const shape = { intermediate_size: 8, num_attention_heads: 2, num_key_value_heads: 1 }
      const tooFew = yield* Effect.flip(decodeHfConfig({ ...minimalLlama, layer_shapes: [shape] }, path))
      assert.strictEqual(tooFew._tag, "InvalidConfig")
      assert.include(tooFew.message, "layer_shapes has 1 entries but num_hidden_layers is 2")
      const notMultiple = yield* Effect.flip(
        decodeHfConfig({ ...minimalLlama, layer_shapes: [shape, { ...shape, num_attention_heads: 3, num_key_value_heads: 2 }] }, path)
      )
      assert.include(notMultiple.message, "layer 1: query heads (3) must be a positive multiple of key/value heads (2)")
      const zero = yield* Effect.flip(decodeHfConfig({ ...minimalLlama, layer_shapes: [shape, { ...shape, intermediate_size: 0 }] }, path))
      assert.include(zero.message, "layer_shapes")
      const notArray = yield* Effect.flip(decodeHfConfig({ ...minimalLlama, layer_shapes: { 0: shape } }, path))
      assert.include(notArray.message, "layer_shapes")
    }))

  it.effect("a config the architecture cannot express is refused", () =>
    Effect.gen(function*() {
      const qwenWithMlpBias = tinyConfig({ architecture: "qwen2", qkvBias: true, mlpBias: true })
      const qwenHf = yield* decodeHfConfig(qwen2ConfigJson(qwenWithMlpBias, "float32"), path)
      assert.strictEqual((yield* Effect.flip(toHfConfigJson(qwenWithMlpBias, qwenHf, "F32"))).message.includes("Qwen2"), true)
    }))
})
