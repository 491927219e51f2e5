/**
 * ONNX Runtime's WebGPU execution provider (Dawn inside onnxruntime-node; Mesa's lavapipe in CI)
 * against its CPU provider and simmer's forward on the cpu backend: logits (1e-4), one KV-cache
 * step, greedy ids (exact), on the transformers fixture, a Qwen2 with biases and a
 * `layer_shapes` model; ONNX Runtime's own profile shows which provider ran each MatMul. Without
 * a Vulkan driver the provider cannot start and this file fails rather than skips.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { disposeParams } from "../../src/model/Params.ts"
import { modelOnnx } from "../../src/onnx/ModelGraph.ts"
import { type DecoderSession, openDecoderSession, ortProviderBeside, type OrtProvider, runDecoder } from "../../src/onnx/OrtDecoder.ts"
import { generateGreedyOrt } from "../../src/onnx/OrtGenerate.ts"
import { useBackend } from "../helpers/backend.ts"
import { checkAgainstTfjs, checkCacheStep, engineFixtures } from "./_support.ts"

const profiles = mkdtempSync(join(tmpdir(), "simmer-ort-profile-"))
beforeAll(() => useBackend("cpu"))
afterAll(() => rmSync(profiles, { recursive: true, force: true }))

let profileCount = 0
const profiled = async (bytes: Uint8Array, provider?: OrtProvider) => {
  const prefix = join(profiles, `p${profileCount++}`)
  const session = await openDecoderSession(bytes, { profilePrefix: prefix, ...(provider !== undefined ? { provider } : {}) })
  return { session, prefix }
}

/** The providers that ran each op's nodes, from the profile the session wrote under `prefix`. */
const providersByOp = (session: DecoderSession, prefix: string): Map<string, Array<string>> => {
  session.endProfiling()
  const name = readdirSync(profiles).find((f) => join(profiles, f).startsWith(prefix + "_"))
  expect(name, "ONNX Runtime wrote no profile").toBeDefined()
  const events: Array<{ args?: { op_name?: string; provider?: string } }> = JSON.parse(readFileSync(join(profiles, name!), "utf8"))
  const byOp = new Map<string, Set<string>>()
  for (const { args } of events) {
    if (args?.op_name === undefined || args.provider === undefined) continue
    byOp.set(args.op_name, (byOp.get(args.op_name) ?? new Set()).add(args.provider))
  }
  return new Map([...byOp].map(([op, providers]) => [op, [...providers]]))
}

describe("ONNX Runtime's WebGPU execution provider", () => {
  it("is the provider beside the webgpu backend, the CPU's beside the others", () => {
    expect(ortProviderBeside("webgpu")).toBe("webgpu")
    for (const backend of ["wasm", "cpu", "tensorflow"]) expect(ortProviderBeside(backend)).toBe("cpu")
  })

  for (const fixture of engineFixtures) {
    it.effect(`agrees with the CPU provider and simmer's forward on ${fixture.name}, its products on the GPU`, () =>
      Effect.gen(function*() {
        const model = yield* fixture.model()
        const bytes = yield* modelOnnx(model)
        const { session: gpu, prefix } = yield* Effect.promise(() => profiled(bytes, "webgpu"))
        const cpu = yield* Effect.promise(() => openDecoderSession(bytes, { provider: "cpu" }))
        yield* checkAgainstTfjs(gpu, model)
        yield* checkCacheStep(gpu, model, [2, 7, 1, 8, 2, 8, 1])
        const prompts = [[3, 1, 4], [1, 5, 9, 2, 6], [5]]
        const onGpu = yield* Effect.promise(() => generateGreedyOrt(gpu, model.config, prompts, 6, []))
        const onCpu = yield* Effect.promise(() => generateGreedyOrt(cpu, model.config, prompts, 6, []))
        expect(onGpu).toEqual(onCpu)
        expect(onGpu.every((seq) => seq.length === 6)).toBe(true)
        // The products, and the fused rotary kernel of the sessions simmer opens, on the GPU.
        const providers = providersByOp(gpu, prefix)
        expect(providers.get("MatMul")).toEqual(["WebGpuExecutionProvider"])
        expect(providers.get("RotaryEmbedding")).toEqual(["WebGpuExecutionProvider"])
        yield* Effect.promise(() => Promise.all([gpu.release(), cpu.release()]))
        disposeParams(model.config, model.params)
      }), 120_000)
  }

  it.effect("runs a session opened beside the webgpu backend on the GPU, and one beside wasm on the CPU", () =>
    Effect.gen(function*() {
      const model = yield* engineFixtures[1].model()
      const bytes = yield* modelOnnx(model)
      disposeParams(model.config, model.params)
      const providerOf = (backend: "webgpu" | "wasm") =>
        Effect.promise(async () => {
          await useBackend(backend)
          const { session, prefix } = await profiled(bytes)
          await runDecoder(session, model.config, { ids: [[1, 2, 3]] })
          const providers = providersByOp(session, prefix).get("MatMul")
          await session.release()
          return providers
        })
      expect(yield* providerOf("webgpu")).toEqual(["WebGpuExecutionProvider"])
      expect(yield* providerOf("wasm")).toEqual(["CPUExecutionProvider"])
      yield* Effect.promise(() => useBackend("cpu"))
      expect(tf.getBackend()).toBe("cpu")
    }), 120_000)
})
