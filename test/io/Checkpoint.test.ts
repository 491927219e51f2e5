import { mkdir, readdir, rm, truncate } from "node:fs/promises"
import { join } from "node:path"
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { LoadedCheckpoint } from "../../src/io/Checkpoint.ts"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { saveCheckpoint } from "../../src/io/CheckpointWriter.ts"
import { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits } from "../../src/io/Dtype.ts"
import { decodeHfConfig, type HfConfig } from "../../src/io/HfConfig.ts"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import { disposeParams, type Params, paramSpecs } from "../../src/model/Params.ts"
import {
  editSafetensors,
  f32Bytes,
  fixtureCopy,
  fixtureDir,
  llamaConfigJson,
  qwen2ConfigJson,
  randomParams,
  readBytes,
  readJson,
  readText,
  splitSafetensors,
  tempDir,
  tinyConfig,
  writeBytes
} from "./_support.ts"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** Loads a checkpoint and disposes its tensors when the test's Scope closes. */
const load = (dir: string) =>
  Effect.acquireRelease(loadCheckpoint(dir), (c) => Effect.sync(() => disposeParams(c.config, c.params)))

/** Values of every tensor, by name, in internal orientation. */
const values = (config: ModelConfig, params: Params): Map<string, Float32Array> =>
  new Map(paramSpecs(config).map((s) => [s.name, s.get(params).dataSync() as Float32Array]))

const bits = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)]

/** A saved tiny checkpoint; its params are disposed when the Scope closes. */
const tinyCheckpoint = (
  config: ModelConfig,
  hfConfig: Record<string, unknown>,
  options: { dtype?: "F32" | "F16" | "BF16"; maxShardBytes?: number } = {}
) =>
  Effect.gen(function*() {
    const dir = join(yield* tempDir, "tiny")
    const hf = yield* decodeHfConfig(hfConfig, join(dir, "config.json"))
    const params = yield* Effect.acquireRelease(Effect.sync(() => randomParams(config, 7)), (p) => Effect.sync(() => disposeParams(config, p)))
    const dtype = options.dtype ?? "F32"
    yield* saveCheckpoint(dir, { config, hfConfig: hf, params, dtype, ...(options.maxShardBytes ? { maxShardBytes: options.maxShardBytes } : {}) })
    return { dir, hf, params }
  })

describe("the transformers fixture", () => {
  it.effect("loads with the README's shape and the file's values in internal orientation", () =>
    Effect.gen(function*() {
      const before = tf.memory().numTensors
      const ckpt: LoadedCheckpoint = yield* load(fixtureDir)
      assert.strictEqual(ckpt.dtype, "F32")
      const c = ckpt.config
      assert.deepStrictEqual(
        [c.hiddenSize, c.layers.length, c.layers[0].intermediateSize, c.layers[0].numHeads, c.layers[0].numKeyValueHeads],
        [64, 3, 176, 8, 2]
      )
      assert.deepStrictEqual([c.vocabSize, c.tieWordEmbeddings, c.ropeTheta], [96, false, 10000])
      assert.deepStrictEqual(ckpt.files.weights, [join(fixtureDir, "model.safetensors")])
      assert.strictEqual(ckpt.files.index, undefined)
      assert.strictEqual(ckpt.files.generationConfig, join(fixtureDir, "generation_config.json"))
      assert.deepStrictEqual(ckpt.files.tokenizer, [])
      assert.deepStrictEqual(ckpt.generationConfig, { _from_model_config: true, bos_token_id: 1, eos_token_id: 2, transformers_version: "4.48.3" })
      assert.strictEqual(tf.memory().numTensors - before, paramSpecs(ckpt.config).length)

      // Compare with bytes read straight from the file: PyTorch [out, in] becomes [in, out].
      const file = yield* readBytes(join(fixtureDir, "model.safetensors"))
      const { header } = splitSafetensors(file)
      const dataStart = 8 + Number(file.readBigUInt64LE(0))
      const at = (name: string, row: number, col: number, cols: number) =>
        file.readFloatLE(dataStart + header[name].data_offsets[0] + (row * cols + col) * 4)
      const k = ckpt.params.layers[1].k.w
      assert.deepStrictEqual(k.shape, [64, 16])
      const kValues = k.dataSync()
      for (const [out, inp] of [[0, 0], [3, 5], [15, 63], [7, 40]]) {
        assert.strictEqual(kValues[inp * 16 + out], at("model.layers.1.self_attn.k_proj.weight", out, inp, 64))
      }
      const down = ckpt.params.layers[2].down.w
      assert.deepStrictEqual(down.shape, [176, 64])
      assert.strictEqual(down.dataSync()[100 * 64 + 9], at("model.layers.2.mlp.down_proj.weight", 9, 100, 176))
      assert.strictEqual(ckpt.params.embed.dataSync()[5 * 64 + 7], at("model.embed_tokens.weight", 5, 7, 64))
      assert.strictEqual(ckpt.params.norm.dataSync()[33], at("model.norm.weight", 0, 33, 64))
    }))

  it.effect("re-saving gives byte-identical model.safetensors, config.json and generation_config.json", () =>
    Effect.gen(function*() {
      const ckpt = yield* load(fixtureDir)
      const out = join(yield* tempDir, "resaved")
      const saved = yield* saveCheckpoint(out, {
        config: ckpt.config,
        hfConfig: ckpt.hfConfig,
        params: ckpt.params,
        dtype: ckpt.dtype,
        generationConfig: ckpt.generationConfig,
        extraFiles: [join(fixtureDir, "README.md")]
      })
      assert.deepStrictEqual(saved.files, ["config.json", "generation_config.json", "model.safetensors", "README.md"])
      assert.deepStrictEqual((yield* promise(() => readdir(out))).sort(), ["README.md", "config.json", "generation_config.json", "model.safetensors"])
      const same = (name: string) =>
        Effect.gen(function*() {
          const a = yield* readBytes(join(fixtureDir, name))
          const b = yield* readBytes(join(out, name))
          assert.isTrue(a.equals(b), `${name} differs`)
        })
      yield* same("model.safetensors")
      yield* same("config.json")
      yield* same("generation_config.json")
      // Honest about what that means: every key and value is the original's, including
      // transformers_version, which we keep rather than claim a transformers release wrote it.
      const config = yield* readJson(join(out, "config.json"))
      assert.strictEqual(config.transformers_version, "4.48.3")
      assert.deepStrictEqual(config, yield* readJson(join(fixtureDir, "config.json")))
    }))
})

const expectedQwenTensors = (layers: number): Array<string> => {
  // Sorted bytewise, as the safetensors library orders a single-dtype file; no lm_head (tied).
  const perLayer = [
    "input_layernorm.weight",
    "mlp.down_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "post_attention_layernorm.weight",
    "self_attn.k_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.q_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.v_proj.weight"
  ]
  return [
    "model.embed_tokens.weight",
    ...Array.from({ length: layers }, (_, i) => perLayer.map((s) => `model.layers.${i}.${s}`)).flat(),
    "model.norm.weight"
  ]
}

describe("checkpoints built in tests", () => {
  const qwenConfig = tinyConfig({ architecture: "qwen2", qkvBias: true, tieWordEmbeddings: true })

  it.effect("Qwen2 with tied embeddings and q/k/v bias: transformers' layout, bit-exact round trip", () =>
    Effect.gen(function*() {
      const json = qwen2ConfigJson(qwenConfig, "float32")
      const { dir, params } = yield* tinyCheckpoint(qwenConfig, json)
      assert.deepStrictEqual((yield* promise(() => readdir(dir))).sort(), ["config.json", "model.safetensors"])
      const { header } = splitSafetensors(yield* readBytes(join(dir, "model.safetensors")))
      assert.deepStrictEqual(Object.keys(header), ["__metadata__", ...expectedQwenTensors(2)])
      assert.deepStrictEqual(header.__metadata__, { format: "pt" })
      assert.deepStrictEqual(header["model.layers.1.self_attn.k_proj.weight"].shape, [4, 8])
      assert.deepStrictEqual(header["model.layers.1.self_attn.k_proj.bias"].shape, [4])
      assert.deepStrictEqual(header["model.layers.0.mlp.down_proj.weight"].shape, [8, 12])
      // config.json has exactly Qwen2Config's keys and the values we gave.
      assert.deepStrictEqual(yield* readJson(join(dir, "config.json")), json)
      const text = yield* readText(join(dir, "config.json"))
      assert.include(text, "  \"rms_norm_eps\": 1e-06,\n")
      assert.include(text, "  \"rope_theta\": 10000.0,\n")

      const ckpt = yield* load(dir)
      assert.deepStrictEqual(ckpt.config, qwenConfig)
      assert.isUndefined(ckpt.params.lmHead)
      const original = values(qwenConfig, params)
      for (const [name, loaded] of values(ckpt.config, ckpt.params)) {
        assert.deepStrictEqual(bits(loaded), bits(original.get(name)!), name)
      }
    }))

  for (const [dtype, torchName, roundTrip] of [
    ["BF16", "bfloat16", (x: number) => bfloat16BitsToFloat32(float32ToBfloat16Bits(x))],
    ["F16", "float16", (x: number) => float16BitsToFloat32(float32ToFloat16Bits(x))]
  ] as const) {
    it.effect(`${dtype}: every tensor stored as ${dtype}, torch_dtype ${torchName}, values rounded once`, () =>
      Effect.gen(function*() {
        const config = tinyConfig({ mlpBias: true, qkvBias: true, outputBias: true })
        const { dir, params } = yield* tinyCheckpoint(config, llamaConfigJson(config, "float32"), { dtype })
        const bytes = yield* readBytes(join(dir, "model.safetensors"))
        const { header, data } = splitSafetensors(bytes)
        const entries = Object.entries(header).filter(([k]) => k !== "__metadata__")
        assert.isTrue(entries.every(([, e]) => e.dtype === dtype))
        const elements = paramSpecs(config).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)
        assert.strictEqual(data.length, elements * 2)
        assert.strictEqual((yield* readJson(join(dir, "config.json"))).torch_dtype, torchName)

        const ckpt = yield* load(dir)
        assert.strictEqual(ckpt.dtype, dtype)
        const original = values(config, params)
        for (const [name, loaded] of values(ckpt.config, ckpt.params)) {
          assert.deepStrictEqual([...loaded], [...original.get(name)!].map(roundTrip), name)
        }
      }))
  }

  it.effect("sharded: transformers' shard names, greedy split in state_dict order, index.json", () =>
    Effect.gen(function*() {
      const config = tinyConfig()
      const { dir, params } = yield* tinyCheckpoint(config, llamaConfigJson(config, "float32"), { maxShardBytes: 1000 })
      // Tensor bytes: embed 352, per layer q 256, k 128, v 128, o 256, gate/up/down 384, norms 32; norm 32, lm_head 352.
      const L = (i: number, s: string) => `model.layers.${i}.${s}`
      const expected = [
        ["model.embed_tokens.weight", L(0, "self_attn.q_proj.weight"), L(0, "self_attn.k_proj.weight"), L(0, "self_attn.v_proj.weight")],
        [L(0, "self_attn.o_proj.weight"), L(0, "mlp.gate_proj.weight")],
        [L(0, "mlp.up_proj.weight"), L(0, "mlp.down_proj.weight"), L(0, "input_layernorm.weight"), L(0, "post_attention_layernorm.weight")],
        [L(1, "self_attn.q_proj.weight"), L(1, "self_attn.k_proj.weight"), L(1, "self_attn.v_proj.weight"), L(1, "self_attn.o_proj.weight")],
        [L(1, "mlp.gate_proj.weight"), L(1, "mlp.up_proj.weight")],
        [L(1, "mlp.down_proj.weight"), L(1, "input_layernorm.weight"), L(1, "post_attention_layernorm.weight"), "model.norm.weight", "lm_head.weight"]
      ]
      const shardNames = expected.map((_, i) => `model-0000${i + 1}-of-00006.safetensors`)
      assert.deepStrictEqual(
        (yield* promise(() => readdir(dir))).sort(),
        ["config.json", ...shardNames, "model.safetensors.index.json"].sort()
      )
      for (const [i, names] of expected.entries()) {
        const { header } = splitSafetensors(yield* readBytes(join(dir, shardNames[i])))
        assert.deepStrictEqual(Object.keys(header).filter((k) => k !== "__metadata__").sort(), [...names].sort())
      }
      const indexText = yield* readText(join(dir, "model.safetensors.index.json"))
      assert.isTrue(indexText.startsWith(
        "{\n  \"metadata\": {\n    \"total_size\": 4704\n  },\n" +
          "  \"weight_map\": {\n    \"lm_head.weight\": \"model-00006-of-00006.safetensors\",\n"
      ))
      assert.isTrue(indexText.endsWith("\n  }\n}\n"))
      const index = JSON.parse(indexText)
      const weightMap = Object.fromEntries(expected.flatMap((names, i) => names.map((n) => [n, shardNames[i]])))
      assert.deepStrictEqual(index, { metadata: { total_size: 4704 }, weight_map: weightMap })
      assert.deepStrictEqual(Object.keys(index.weight_map), Object.keys(weightMap).sort())

      const ckpt = yield* load(dir)
      assert.strictEqual(ckpt.files.index, join(dir, "model.safetensors.index.json"))
      assert.deepStrictEqual(ckpt.files.weights, shardNames.map((n) => join(dir, n)))
      const original = values(config, params)
      for (const [name, loaded] of values(ckpt.config, ckpt.params)) assert.deepStrictEqual(bits(loaded), bits(original.get(name)!), name)
    }))
})

describe("malformed checkpoints", () => {
  /** Loads `dir`, expecting a failure whose message names `file`. */
  const failure = (dir: string, file: string) =>
    Effect.gen(function*() {
      const before = tf.memory().numTensors
      const error = yield* Effect.flip(loadCheckpoint(dir))
      assert.include(error.message, file)
      assert.strictEqual(tf.memory().numTensors, before, "no tensors left behind")
      return error
    })

  it.effect("a missing folder, or one without config.json or weights", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const missing = join(root, "nope")
      assert.strictEqual((yield* failure(missing, missing))._tag, "CheckpointNotFound")
      const empty = join(root, "empty")
      yield* promise(() => mkdir(empty))
      assert.strictEqual((yield* failure(empty, empty))._tag, "CheckpointNotFound")
      yield* writeBytes(join(empty, "config.json"), yield* readText(join(fixtureDir, "config.json")))
      const noWeights = yield* failure(empty, empty)
      assert.strictEqual(noWeights._tag, "CheckpointNotFound")
      assert.include(noWeights.message, "no weights")
      yield* writeBytes(join(empty, "pytorch_model.bin"), "x")
      const pickle = yield* failure(empty, "pytorch_model.bin")
      assert.strictEqual(pickle._tag, "UnsupportedModel")
    }))

  it.effect("a config.json failing the Schema lists every problem", () =>
    Effect.gen(function*() {
      const dir = yield* fixtureCopy
      const config = yield* readJson(join(dir, "config.json"))
      yield* writeBytes(join(dir, "config.json"), JSON.stringify({ ...config, vocab_size: 0, num_attention_heads: "8", rope_theta: null }))
      const error = yield* failure(dir, join(dir, "config.json"))
      assert.strictEqual(error._tag, "InvalidConfig")
      for (const path of ["vocab_size", "num_attention_heads", "rope_theta"]) assert.include(error.message, `${path}: `)
    }))

  it.effect("an unsupported architecture", () =>
    Effect.gen(function*() {
      const dir = yield* fixtureCopy
      const config = yield* readJson(join(dir, "config.json"))
      yield* writeBytes(join(dir, "config.json"), JSON.stringify({ ...config, model_type: "mistral", architectures: ["MistralForCausalLM"] }))
      const error = yield* failure(dir, join(dir, "config.json"))
      assert.strictEqual(error._tag, "UnsupportedModel")
      assert.include(error.message, "MistralForCausalLM")
    }))

  it.effect("unsupported dtypes: an I64 tensor, a torch_dtype that is not float", () =>
    Effect.gen(function*() {
      const dir = yield* fixtureCopy
      const weights = join(dir, "model.safetensors")
      yield* editSafetensors(
        weights,
        (h, size) => ({ ...h, "model.position_ids": { dtype: "I64", shape: [2], data_offsets: [size, size + 16] } }),
        new Uint8Array(16)
      )
      const tensor = yield* failure(dir, weights)
      assert.strictEqual(tensor._tag, "UnsupportedDtype")
      assert.include(tensor.message, "\"model.position_ids\" is I64")

      const other = yield* fixtureCopy
      const config = yield* readJson(join(other, "config.json"))
      yield* writeBytes(join(other, "config.json"), JSON.stringify({ ...config, torch_dtype: "int8" }))
      const declared = yield* failure(other, join(other, "config.json"))
      assert.strictEqual(declared._tag, "UnsupportedDtype")
      assert.include(declared.message, "int8")
    }))

  it.effect("a truncated file, a header length beyond the file, offsets out of range, overlapping tensors", () =>
    Effect.gen(function*() {
      const truncated = yield* fixtureCopy
      const weights = (dir: string) => join(dir, "model.safetensors")
      yield* promise(() => truncate(weights(truncated), 500_000))
      const t = yield* failure(truncated, weights(truncated))
      assert.strictEqual(t._tag, "CorruptCheckpoint")
      assert.include(t.message, "truncated")

      const longHeader = yield* fixtureCopy
      const bytes = yield* readBytes(weights(longHeader))
      bytes.writeBigUInt64LE(10_000_000n, 0)
      yield* writeBytes(weights(longHeader), bytes)
      const h = yield* failure(longHeader, weights(longHeader))
      assert.strictEqual(h._tag, "CorruptCheckpoint")
      assert.include(h.message, "header length is 10000000 bytes")

      const outOfRange = yield* fixtureCopy
      yield* editSafetensors(weights(outOfRange), (header, size) => ({
        ...header,
        "model.norm.weight": { ...header["model.norm.weight"], data_offsets: [size - 128, size + 128] }
      }))
      const o = yield* failure(outOfRange, weights(outOfRange))
      assert.strictEqual(o._tag, "CorruptCheckpoint")
      assert.include(o.message, "\"model.norm.weight\" has data_offsets")

      const overlapping = yield* fixtureCopy
      yield* editSafetensors(weights(overlapping), (header) => ({
        ...header,
        "model.norm.weight": { ...header["model.norm.weight"], data_offsets: [0, 256] }
      }))
      const v = yield* failure(overlapping, weights(overlapping))
      assert.strictEqual(v._tag, "CorruptCheckpoint")
      assert.include(v.message, "overlap")
      assert.include(v.message, "lm_head.weight")
    }))

  it.effect("tensors that disagree with config.json: wrong shape, missing, unexpected", () =>
    Effect.gen(function*() {
      const shape = yield* fixtureCopy
      const config = yield* readJson(join(shape, "config.json"))
      yield* writeBytes(join(shape, "config.json"), JSON.stringify({ ...config, intermediate_size: 160 }))
      const s = yield* failure(shape, join(shape, "model.safetensors"))
      assert.strictEqual(s._tag, "TensorMismatch")
      if (s._tag === "TensorMismatch") {
        assert.strictEqual(s.wrongShape.length, 9)
        assert.deepStrictEqual([s.missing, s.unexpected], [[], []])
      }
      assert.include(s.message, "model.layers.0.mlp.gate_proj.weight is [176, 64], config.json implies [160, 64]")
      assert.include(s.message, join(shape, "config.json"))

      const missing = yield* fixtureCopy
      yield* editSafetensors(join(missing, "model.safetensors"), (header) => {
        const { ["model.norm.weight"]: _, ...rest } = header
        return rest
      })
      const m = yield* failure(missing, join(missing, "model.safetensors"))
      assert.strictEqual(m._tag, "TensorMismatch")
      if (m._tag === "TensorMismatch") assert.deepStrictEqual(m.missing, ["model.norm.weight"])
      assert.include(m.message, "missing 1 tensor(s): model.norm.weight")

      const extra = yield* fixtureCopy
      yield* editSafetensors(join(extra, "model.safetensors"), (header, size) => ({
        ...header,
        "model.layers.0.self_attn.q_norm.weight": { dtype: "F32", shape: [2], data_offsets: [size, size + 8] }
      }), f32Bytes([1, 1]))
      const u = yield* failure(extra, join(extra, "model.safetensors"))
      assert.strictEqual(u._tag, "TensorMismatch")
      if (u._tag === "TensorMismatch") assert.deepStrictEqual(u.unexpected, ["model.layers.0.self_attn.q_norm.weight"])
    }))

  it.effect("rotary inv_freq buffers are ignored", () =>
    Effect.gen(function*() {
      const dir = yield* fixtureCopy
      yield* editSafetensors(join(dir, "model.safetensors"), (header, size) => ({
        ...header,
        "model.layers.0.self_attn.rotary_emb.inv_freq": { dtype: "F32", shape: [4], data_offsets: [size, size + 16] }
      }), f32Bytes([1, 0.1, 0.01, 0.001]))
      const ckpt = yield* load(dir)
      assert.strictEqual(ckpt.config.layers.length, 3)
    }))

  it.effect("a tied model's lm_head.weight is ignored when equal to the embedding, rejected when not", () =>
    Effect.gen(function*() {
      const config = tinyConfig({ architecture: "qwen2", qkvBias: true, tieWordEmbeddings: true })
      const { dir } = yield* tinyCheckpoint(config, qwen2ConfigJson(config, "float32"))
      const weights = join(dir, "model.safetensors")
      const original = yield* readBytes(weights)
      const { header, data } = splitSafetensors(original)
      const [begin, end] = header["model.embed_tokens.weight"].data_offsets
      const embedBytes = data.slice(begin, end)
      yield* editSafetensors(weights, (h, size) => ({
        ...h,
        "lm_head.weight": { dtype: "F32", shape: [11, 8], data_offsets: [size, size + embedBytes.length] }
      }), embedBytes)
      const ckpt = yield* load(dir)
      assert.isUndefined(ckpt.params.lmHead)

      yield* writeBytes(weights, original)
      embedBytes[0] ^= 1
      yield* editSafetensors(weights, (h, size) => ({
        ...h,
        "lm_head.weight": { dtype: "F32", shape: [11, 8], data_offsets: [size, size + embedBytes.length] }
      }), embedBytes)
      const error = yield* failure(dir, weights)
      assert.strictEqual(error._tag, "TensorMismatch")
      assert.include(error.message, "lm_head.weight differs from model.embed_tokens.weight")
    }))

  it.effect("an index naming a shard that does not exist, or a path outside the folder", () =>
    Effect.gen(function*() {
      const config = tinyConfig()
      const { dir } = yield* tinyCheckpoint(config, llamaConfigJson(config, "float32"), { maxShardBytes: 1000 })
      const index = join(dir, "model.safetensors.index.json")
      yield* promise(() => rm(join(dir, "model-00003-of-00006.safetensors")))
      const gone = yield* failure(dir, "model-00003-of-00006.safetensors")
      assert.strictEqual(gone._tag, "CorruptCheckpoint")
      assert.include(gone.message, index)
      assert.include(gone.message, "does not exist")

      const parsed = yield* readJson(index)
      const weightMap = parsed.weight_map as Record<string, string>
      const outside = { ...weightMap, "model.norm.weight": "../model-00006-of-00006.safetensors" }
      yield* writeBytes(index, JSON.stringify({ ...parsed, weight_map: outside }))
      const escape = yield* failure(dir, index)
      assert.strictEqual(escape._tag, "CorruptCheckpoint")
      assert.include(escape.message, "not a file name in the checkpoint folder")

      yield* writeBytes(index, "{\"weight_map\": [1]}")
      assert.strictEqual((yield* failure(dir, index))._tag, "CorruptCheckpoint")
    }))

  it.effect("an index that maps a tensor to the wrong shard", () =>
    Effect.gen(function*() {
      const config = tinyConfig()
      const { dir } = yield* tinyCheckpoint(config, llamaConfigJson(config, "float32"), { maxShardBytes: 1000 })
      const index = join(dir, "model.safetensors.index.json")
      const parsed = yield* readJson(index)
      const weightMap = parsed.weight_map as Record<string, string>
      yield* writeBytes(index, JSON.stringify({ ...parsed, weight_map: { ...weightMap, "model.norm.weight": "model-00001-of-00006.safetensors" } }))
      const error = yield* failure(dir, index)
      assert.strictEqual(error._tag, "CorruptCheckpoint")
      assert.include(error.message, "model.norm.weight")
    }))
})

describe("saving", () => {
  const setup = Effect.gen(function*() {
    const config = tinyConfig()
    const hf: HfConfig = yield* decodeHfConfig(llamaConfigJson(config, "float32"), "config.json")
    const params = yield* Effect.acquireRelease(Effect.sync(() => randomParams(config, 3)), (p) => Effect.sync(() => disposeParams(config, p)))
    const root = yield* tempDir
    return { config, hf, params, root }
  })

  it.effect("a save that fails midway leaves nothing at the target or beside it", () =>
    Effect.gen(function*() {
      const { config, hf, params, root } = yield* setup
      const target = join(root, "out")
      const extraFiles = [join(root, "no-such-tokenizer.json")]
      const error = yield* Effect.flip(saveCheckpoint(target, { config, hfConfig: hf, params, dtype: "F32", extraFiles }))
      assert.strictEqual(error._tag, "FileSystemError")
      assert.include(error.message, "no-such-tokenizer.json")
      assert.deepStrictEqual(yield* promise(() => readdir(root)), [])
    }))

  it.effect("a model config cannot express, or params that do not match it, fail before writing", () =>
    Effect.gen(function*() {
      const { config, hf, params, root } = yield* setup
      const target = join(root, "out")
      // Llama's attention_bias covers q/k/v and o_proj together: biases on q/k/v alone have no config key.
      const halfBiased = { ...config, qkvBias: true, outputBias: false }
      const unsupported = yield* Effect.flip(saveCheckpoint(target, { config: halfBiased, hfConfig: hf, params, dtype: "F32" }))
      assert.strictEqual(unsupported._tag, "UnsupportedModel")
      const wider = { ...config, layers: config.layers.map((l) => ({ ...l, intermediateSize: 16 })) }
      const mismatch = yield* Effect.flip(saveCheckpoint(target, { config: wider, hfConfig: hf, params, dtype: "F32" }))
      assert.strictEqual(mismatch._tag, "TensorMismatch")
      assert.include(mismatch.message, "model.layers.0.mlp.gate_proj.weight is [8, 12], the config implies [8, 16]")
      assert.deepStrictEqual(yield* promise(() => readdir(root)), [])
    }))

  it.effect("an existing target is kept unless replacement is asked for", () =>
    Effect.gen(function*() {
      const { config, hf, params, root } = yield* setup
      const target = join(root, "out")
      yield* saveCheckpoint(target, { config, hfConfig: hf, params, dtype: "F32", extraFiles: [{ name: "NOTE.txt", content: "first" }] })
      const exists = yield* Effect.flip(saveCheckpoint(target, { config, hfConfig: hf, params, dtype: "BF16" }))
      assert.strictEqual(exists._tag, "TargetExists")
      assert.include(exists.message, target)
      assert.strictEqual(yield* readText(join(target, "NOTE.txt")), "first")
      yield* saveCheckpoint(target, { config, hfConfig: hf, params, dtype: "BF16", onExisting: "replace" })
      assert.deepStrictEqual((yield* promise(() => readdir(target))).sort(), ["config.json", "model.safetensors"])
      assert.strictEqual((yield* readJson(join(target, "config.json"))).torch_dtype, "bfloat16")
      assert.deepStrictEqual(yield* promise(() => readdir(root)), ["out"])
    }))
})
