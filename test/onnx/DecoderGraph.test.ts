/**
 * The ONNX decoder graph (built in memory) run by ONNX Runtime (CPU) against transformers' own
 * logits (the fixture) and simmer's tfjs forward on the cpu backend: a Llama with GQA and an
 * untied head, a Qwen2 with q/k/v biases and a tied head, and a model whose layers differ
 * (`layer_shapes`); full-sequence logits, left padding and two KV-cache steps. Both graphs:
 * standard ops and Optimum's cache (exports), and ONNX Runtime's fused kernels with a cache
 * each step appends to (the sessions simmer opens).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import type { Model } from "../../src/model/Model.ts"
import { disposeParams } from "../../src/model/Params.ts"
import { modelOnnx } from "../../src/onnx/ModelGraph.ts"
import { openDecoderSession, runDecoder } from "../../src/onnx/OrtDecoder.ts"
import { maxAbsDiff, useBackend } from "../helpers/backend.ts"
import { biasedQwen2, checkAgainstTfjs, checkCacheStep, layerShapesModel, tfjsLogits } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

const fixture = join(import.meta.dirname, "../fixtures/hf-llama-gqa-f32")
interface Reference {
  readonly inputs: ReadonlyArray<{ name: string; input_ids: Array<number>; logits: Array<Array<number>> }>
}
const reference: Reference = JSON.parse(readFileSync(join(fixture, "reference.json"), "utf8"))

// What exports write, and what simmer's own sessions use.
describe.each([
  { kernels: "standard", cache: "optimum" },
  { kernels: "onnxruntime", cache: "appended" }
] as const)("the ONNX decoder graph in ONNX Runtime, $kernels kernels, $cache cache", (options) => {
  const session = (model: Model) =>
    Effect.flatMap(modelOnnx(model, options), (bytes) => Effect.promise(() => openDecoderSession(bytes)))

  it.effect("matches transformers' logits on the Llama GQA fixture, and simmer's forward", () =>
    Effect.gen(function*() {
      const model = yield* loadCheckpoint(fixture)
      const s = yield* session(model)
      for (const input of reference.inputs) {
        const { logits } = yield* Effect.promise(() => runDecoder(s, model.config, { ids: [input.input_ids] }))
        expect(maxAbsDiff(logits, input.logits.flat()), input.name).toBeLessThan(1e-4)
        expect(maxAbsDiff(logits, tfjsLogits(model, [input.input_ids])), input.name).toBeLessThan(1e-4)
      }
      yield* checkCacheStep(s, model, reference.inputs[2].input_ids)
      yield* checkAgainstTfjs(s, model)
      disposeParams(model.config, model.params)
    }))

  it.effect("matches simmer's forward on a Qwen2 model with q/k/v biases and a tied head", () =>
    Effect.gen(function*() {
      const model = biasedQwen2()
      yield* checkAgainstTfjs(yield* session(model), model)
      disposeParams(model.config, model.params)
    }))

  it.effect("matches simmer's forward on a model with layers of different widths (layer_shapes)", () =>
    Effect.gen(function*() {
      const model = yield* layerShapesModel()
      yield* checkAgainstTfjs(yield* session(model), model)
      disposeParams(model.config, model.params)
    }))
})
