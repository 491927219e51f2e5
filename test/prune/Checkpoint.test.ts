import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { saveCheckpoint } from "../../src/io/CheckpointWriter.ts"
import type { HfConfig } from "../../src/io/HfConfig.ts"
import { newHfConfig } from "../../src/io/NewConfig.ts"
import { isUniform, type LayerShape, type ModelConfig } from "../../src/model/ModelConfig.ts"
import { disposeParams, initParams } from "../../src/model/Params.ts"
import { applyPlan, type KeepPlan } from "../../src/prune/Surgery.ts"
import { maxAbsDiff, tinyConfig, useBackend } from "../helpers/backend.ts"
import { logitsOf } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-prune-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const cases: Array<[string, ModelConfig, KeepPlan]> = [
  [
    "key/value groups of a Qwen2 model (tied, q/k/v biases)",
    tinyConfig({ architecture: "qwen2", tieWordEmbeddings: true, qkvBias: true }, { numLayers: 2 }),
    { unit: "heads", keep: [[1], [0]] }
  ],
  ["MLP neurons of a Llama model", tinyConfig({}, { numLayers: 2 }), { unit: "neurons", keep: [[0, 3, 4, 9, 23], [1, 2, 5, 8, 22]] }],
  [
    "MLP neurons, differently per layer (global allocation)",
    tinyConfig({}, { numLayers: 2 }),
    { unit: "neurons", keep: [[0, 3, 4, 9, 23], [7, 11]] }
  ],
  [
    "key/value groups, differently per layer",
    tinyConfig({ architecture: "qwen2", qkvBias: true }, { numLayers: 2 }),
    { unit: "heads", keep: [[0, 1], [1]] }
  ],
  ["decoder blocks of a Llama model", tinyConfig({}, { numLayers: 3 }), { unit: "layers", keep: [0, 2] }]
]

describe("pruned checkpoints", () => {
  it.effect.each(cases)("%s save, reload and give the same logits", ([_name, config, plan]) =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "pruned")
      // A config as it came from the Hub: no head_dim (Qwen2 configs omit it) and a key simmer does not manage.
      const { head_dim: _omitted, ...rest } = newHfConfig(config, { bos: 1, eos: 2, pad: 0 }) as HfConfig & { head_dim?: number }
      const hfConfig = { ...rest, custom_key: { kept: [1, 2] } } as HfConfig
      const pruned = yield* applyPlan(config, initParams(config, 1, 0.3), plan)
      const logits = logitsOf(pruned.config, pruned.params)
      yield* saveCheckpoint(dir, { config: pruned.config, hfConfig, params: pruned.params, dtype: "F32" })
      disposeParams(pruned.config, pruned.params)

      const loaded = yield* loadCheckpoint(dir)
      expect(loaded.config).toEqual(pruned.config)
      expect(maxAbsDiff(logitsOf(loaded.config, loaded.params), logits)).toBe(0)
      disposeParams(loaded.config, loaded.params)

      const json = JSON.parse(yield* Effect.promise(() => readFile(join(dir, "config.json"), "utf8")))
      // The scalar keys hold the widest layer; layer_shapes, only when layers differ, each one.
      const widest = (key: keyof LayerShape) => Math.max(...pruned.config.layers.map((l) => l[key]))
      const layer = { intermediateSize: widest("intermediateSize"), numHeads: widest("numHeads"), numKeyValueHeads: widest("numKeyValueHeads") }
      if (isUniform(pruned.config)) expect(json.layer_shapes).toBeUndefined()
      else {
        expect(json.layer_shapes).toEqual(pruned.config.layers.map((l) => ({
          intermediate_size: l.intermediateSize,
          num_attention_heads: l.numHeads,
          num_key_value_heads: l.numKeyValueHeads
        })))
      }
      expect(json.hidden_size).toBe(config.hiddenSize)
      expect(json.num_hidden_layers).toBe(pruned.config.layers.length)
      expect(json.intermediate_size).toBe(layer.intermediateSize)
      expect(json.num_attention_heads).toBe(layer.numHeads)
      expect(json.num_key_value_heads).toBe(layer.numKeyValueHeads)
      if (json.num_attention_heads * config.headDim !== json.hidden_size) {
        // hidden_size / num_attention_heads is no longer the head size: it must be explicit.
        expect(plan.unit).toBe("heads")
        expect(json.head_dim).toBe(config.headDim)
      } else {
        expect(json.head_dim).toBeUndefined()
      }
      const managed = new Set([
        "hidden_size",
        "num_hidden_layers",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "layer_shapes"
      ])
      for (const [key, value] of Object.entries(hfConfig)) {
        if (!managed.has(key)) expect(json[key], key).toEqual(value)
      }
    }).pipe(Effect.scoped)
  )
})
