/**
 * `simmer export --onnx`: the exported folder loaded in a fresh ONNX Runtime session (CPU EP)
 * from model.onnx on disk gives transformers' logits on the fixture and simmer's own forward
 * on a Qwen2 with biases and a layer_shapes model (1e-4), with weights inline and in external
 * data; the command writes the config, generation config and tokenizer beside it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync, statSync } from "node:fs"
import { mkdtemp, readdir, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { saveCheckpoint } from "../../src/io/CheckpointWriter.ts"
import { newHfConfig } from "../../src/io/NewConfig.ts"
import type { Model } from "../../src/model/Model.ts"
import { disposeParams, paramSpecs } from "../../src/model/Params.ts"
import { onnx } from "../../src/onnx/GraphBuilder.ts"
import { exportOnnx } from "../../src/onnx/OnnxExport.ts"
import { openDecoderSession, runDecoder } from "../../src/onnx/OrtDecoder.ts"
import { maxAbsDiff, useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { simmer } from "../helpers/cli.ts"
import { biasedQwen2, checkAgainstTfjs, checkCacheStep, layerShapesModel } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

const fixture = join(import.meta.dirname, "../fixtures/hf-llama-gqa-f32")
interface Reference {
  readonly inputs: ReadonlyArray<{ name: string; input_ids: Array<number>; logits: Array<Array<number>> }>
}
const reference: Reference = JSON.parse(readFileSync(join(fixture, "reference.json"), "utf8"))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-onnx-export-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** Saves the model as a checkpoint, exports it, and returns the checkpoint reloaded and a fresh session on the export. */
const exported = (model: Model, external: boolean) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    yield* saveCheckpoint(join(dir, "checkpoint"), {
      config: model.config,
      hfConfig: newHfConfig(model.config, { bos: 1, eos: 2, pad: 0 }),
      params: model.params,
      dtype: "F32"
    })
    disposeParams(model.config, model.params)
    const result = yield* exportOnnx(join(dir, "checkpoint"), join(dir, "onnx"), { externalData: external ? "always" : "auto" })
    const reloaded = yield* loadCheckpoint(join(dir, "checkpoint"))
    const session = yield* Effect.promise(() => openDecoderSession(join(dir, "onnx", "model.onnx")))
    return { result, model: reloaded, session, files: yield* Effect.promise(() => readdir(join(dir, "onnx"))) }
  })

describe("simmer export --onnx", () => {
  it.effect("the transformers fixture: a fresh session on model.onnx gives transformers' logits and simmer's", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* tempDir
      const result = yield* exportOnnx(fixture, join(dir, "onnx"))
      expect(result.externalBytes).toBeUndefined()
      expect((yield* Effect.promise(() => readdir(join(dir, "onnx")))).sort()).toEqual(
        ["config.json", "genai_config.json", "generation_config.json", "model.onnx"]
      )
      expect(readFileSync(join(dir, "onnx", "config.json"), "utf8")).toBe(readFileSync(join(fixture, "config.json"), "utf8"))
      const genai = JSON.parse(readFileSync(join(dir, "onnx", "genai_config.json"), "utf8"))
      expect(genai.model.decoder).toMatchObject({ num_key_value_heads: 2, num_attention_heads: 8, head_size: 8, num_hidden_layers: 3 })
      expect(genai.model.eos_token_id).toBe(2)

      const session = yield* Effect.promise(() => openDecoderSession(join(dir, "onnx", "model.onnx")))
      expect(session.inputNames.slice(0, 5)).toEqual(["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value"])
      expect(session.outputNames.slice(0, 3)).toEqual(["logits", "present.0.key", "present.0.value"])
      const model = yield* loadCheckpoint(fixture)
      for (const input of reference.inputs) {
        const { logits } = yield* Effect.promise(() => runDecoder(session, model.config, { ids: [input.input_ids] }))
        expect(maxAbsDiff(logits, input.logits.flat()), input.name).toBeLessThan(1e-4)
      }
      yield* checkCacheStep(session, model, reference.inputs[2].input_ids)
      yield* checkAgainstTfjs(session, model)
      disposeParams(model.config, model.params)
    })))

  it.effect("a Qwen2 model with q/k/v biases and a tied head, weights inline", () =>
    Effect.scoped(Effect.gen(function*() {
      const { result, model, session, files } = yield* exported(biasedQwen2(), false)
      expect(files).not.toContain("model.onnx_data")
      // A tied head reads the embedding (Gemm, transposed): one [V, D] tensor in the file, no copy.
      const proto = onnx.ModelProto.decode(readFileSync(join(result.dir, "model.onnx")))
      const vocabByHidden = (proto.graph?.initializer ?? []).filter((t) => (t.dims ?? []).map(Number).join() === `${model.config.vocabSize},${model.config.hiddenSize}`)
      expect(vocabByHidden.map((t) => t.name)).toEqual(["model.embed_tokens.weight"])
      expect((proto.graph?.node ?? []).filter((n) => n.opType === "Gemm").map((n) => Number(n.attribute?.[0].i))).toEqual([1])
      // Standard ops only, so that every ONNX runtime reads it: none of ONNX Runtime's contrib kernels.
      expect((proto.opsetImport ?? []).map((o) => o.domain ?? "")).toEqual([""])
      expect((proto.graph?.node ?? []).filter((n) => (n.domain ?? "") !== "").map((n) => n.opType)).toEqual([])
      yield* checkAgainstTfjs(session, model)
      disposeParams(model.config, model.params)
    })))

  it.effect("a layer_shapes model pruned with global allocation, weights in model.onnx_data", () =>
    Effect.scoped(Effect.gen(function*() {
      const { result, model, session, files } = yield* exported(yield* layerShapesModel(), true)
      expect(files).toContain("model.onnx_data")
      expect(files).not.toContain("genai_config.json") // GenAI knows one shape for every layer
      expect(result.externalBytes).toBeGreaterThan(result.modelBytes)
      expect(statSync(join(result.dir, "model.onnx_data")).size).toBe(result.externalBytes)
      // Every weight lies in model.onnx_data at a page-aligned offset; none stays inline.
      const proto = onnx.ModelProto.decode(readFileSync(join(result.dir, "model.onnx")))
      const weights = (proto.graph?.initializer ?? []).filter((t) => t.name?.startsWith("model.") || t.name?.startsWith("lm_head"))
      expect(weights.length).toBe(paramSpecs(model.config).length)
      for (const t of weights) {
        const entries = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]))
        expect(entries.location).toBe("model.onnx_data")
        expect(Number(entries.offset) % 4096, t.name ?? "").toBe(0)
        expect(t.rawData?.length ?? 0).toBe(0)
      }
      yield* checkAgainstTfjs(session, model)
      disposeParams(model.config, model.params)
    })))

  it.effect("the command writes the tokenizer beside the model and refuses to overwrite without --replace", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* tempDir
      yield* writeTinyCheckpoint(join(dir, "tiny"))
      const out = join(dir, "tiny-onnx")
      const first = yield* Effect.promise(() => simmer(["export", join(dir, "tiny"), "--onnx", out]))
      expect(first.status, first.stderr).toBe(0)
      expect(first.stdout).toMatch(/^wrote .*tiny-onnx: model\.onnx \(.* MiB, weights inline\), config\.json, .*tokenizer\.json/)
      expect(existsSync(join(out, "tokenizer.json"))).toBe(true)
      const again = yield* Effect.promise(() => simmer(["export", join(dir, "tiny"), "--onnx", out]))
      expect(again.status).toBe(1)
      expect(again.stderr).toContain("already exists; refusing to overwrite it (choose another --onnx, or add --replace)")
      const replaced = yield* Effect.promise(() => simmer(["export", join(dir, "tiny"), "--onnx", out, "--replace", "--external-data", "--json"]))
      expect(replaced.status, replaced.stderr).toBe(0)
      expect(JSON.parse(replaced.stdout).files).toContain("model.onnx_data")
    })))
})
