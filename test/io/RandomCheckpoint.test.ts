import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { openLazyCheckpoint } from "../../src/io/CheckpointReader.ts"
import { decodeHfConfig, toModelConfig } from "../../src/io/HfConfig.ts"
import { writeRandomCheckpoint } from "../../src/io/RandomCheckpoint.ts"
import { shapePresetNames, shapePresets } from "../../src/io/ShapePresets.ts"
import { countParams } from "../../src/model/Params.ts"
import { inverseFrequencies } from "../../src/model/Rope.ts"
import { useBackend } from "../helpers/backend.ts"

beforeAll(() => useBackend("cpu"))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-random-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

describe("real model shapes", () => {
  it.effect("every preset is a valid config with the published parameter count", () =>
    Effect.gen(function*() {
      // Parameter counts of the published models (tied embeddings: no separate LM head).
      const published: Record<string, number> = {
        "smollm2-135m": 134_515_008,
        "qwen2.5-0.5b": 494_032_768,
        "llama-3.2-1b": 1_235_814_400,
        "qwen2.5-1.5b": 1_543_714_304
      }
      for (const name of shapePresetNames) {
        const hf = yield* decodeHfConfig(shapePresets[name], `${name}/config.json`)
        expect(countParams(toModelConfig(hf)).total).toBe(published[name])
      }
      expect(toModelConfig(shapePresets["llama-3.2-1b"]).ropeScaling).toEqual({
        kind: "llama3",
        factor: 32,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 8192
      })
    }))

  it("Llama 3 RoPE scaling keeps high frequencies, divides low ones and blends the band between", () => {
    // head_dim 6, θ 10000: plain inv_freq 1, 10000^(-1/3), 10000^(-2/3); wavelengths 2π, 135.4, 2917.
    const scaling = { kind: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 8, originalMaxPositionEmbeddings: 1000 } as const
    const plain = inverseFrequencies(6, 10000)
    const scaled = inverseFrequencies(6, 10000, scaling)
    expect(scaled[0]).toBe(plain[0]) // 2π < 1000 / 8: kept
    expect(scaled[2]).toBeCloseTo(plain[2] / 8, 9) // 2917 > 1000 / 1: divided by the factor
    const smooth = (1000 / ((2 * Math.PI) / plain[1]) - 1) / (8 - 1)
    expect(scaled[1]).toBeCloseTo((1 - smooth) * (plain[1] / 8) + smooth * plain[1], 7)
  })
})

describe("random checkpoints", () => {
  it.effect("are sharded BF16 Hugging Face folders that validate, deterministic in the seed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const hf = { ...shapePresets["llama-3.2-1b"], hidden_size: 64, head_dim: 16, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, num_hidden_layers: 2, vocab_size: 300 }
      const first = yield* writeRandomCheckpoint(join(dir, "a"), hf, { seed: 3, maxShardBytes: 40_000 })
      yield* writeRandomCheckpoint(join(dir, "b"), hf, { seed: 3, maxShardBytes: 40_000 })
      yield* writeRandomCheckpoint(join(dir, "c"), hf, { seed: 4, maxShardBytes: 40_000 })
      expect(first.files).toContain("model.safetensors.index.json")
      const shards = first.files.filter((f) => f.startsWith("model-"))
      expect(shards.length).toBeGreaterThan(1)
      expect(shards.every((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f))).toBe(true)
      for (const shard of shards) {
        const [a, b, c] = yield* Effect.promise(() => Promise.all(["a", "b", "c"].map((d) => readFile(join(dir, d, shard)))))
        expect(a.equals(b)).toBe(true)
        expect(a.equals(c)).toBe(false)
      }
      const open = yield* openLazyCheckpoint(join(dir, "a"))
      expect(open.dtype).toBe("BF16")
      expect(open.config.ropeScaling?.kind).toBe("llama3")
      expect(Array.from(yield* open.read("model.norm.weight")).every((x) => x === 1)).toBe(true)
      const q = yield* open.read("model.layers.0.self_attn.q_proj.weight")
      const std = Math.sqrt(q.reduce((s, x) => s + x * x, 0) / q.length)
      expect(std).toBeGreaterThan(0.015)
      expect(std).toBeLessThan(0.025)
      const config = JSON.parse(yield* Effect.promise(() => readFile(join(dir, "a", "config.json"), "utf8")))
      expect(config.rope_scaling).toEqual(shapePresets["llama-3.2-1b"].rope_scaling)
    }).pipe(Effect.scoped))
})
