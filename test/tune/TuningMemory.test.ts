import { describe, expect, it } from "@effect/vitest"
import { toModelConfig } from "../../src/io/HfConfig.ts"
import { shapePresets } from "../../src/io/ShapePresets.ts"
import { wasmTensorBudgetBytes } from "../../src/compute/DeviceCapacity.ts"
import { adapterParameters, adapterTuningBytes, fullTuningBytes, tuningAdvice } from "../../src/tune/TuningMemory.ts"
import { tinyConfig } from "../helpers/backend.ts"

const allTargets = ["q", "k", "v", "o", "gate", "up", "down"] as const

describe("tuning memory", () => {
  it("counts adapter parameters as rank × (in + out) per adapted projection", () => {
    // Tiny: D 16, 4 heads of 4 (2 KV), MLP 24, 2 layers.
    const config = tinyConfig()
    const perLayer = 2 * ((16 + 16) + (16 + 8) * 2 + (16 + 16) + (16 + 24) * 2 + (24 + 16))
    expect(adapterParameters(config, { rank: 2, targets: allTargets })).toBe(2 * perLayer)
  })

  it("a 0.5B model: full tuning does not fit the wasm heap, the refusal names adapters; adapter tuning fits", () => {
    const config = toModelConfig(shapePresets["qwen2.5-0.5b"])
    const shape = { batchSize: 8, seqLen: 128 }
    expect(fullTuningBytes(config, shape).bytes).toBeGreaterThan(16 * 494e6)
    const advice = tuningAdvice(config, shape, wasmTensorBudgetBytes)
    expect(advice).toContain("adapters (rank 16")
    expect(adapterTuningBytes(config, shape, { rank: 16, targets: allTargets }, true).bytes).toBeLessThan(wasmTensorBudgetBytes)
  })

  it("a 1.5B model fits adapter tuning only with its weights read block by block", () => {
    const config = toModelConfig(shapePresets["qwen2.5-1.5b"])
    const advice = tuningAdvice(config, { batchSize: 8, seqLen: 128 }, wasmTensorBudgetBytes)
    expect(advice).toContain("block by block")
  })

  it("a tiny model fits full tuning: no advice", () => {
    expect(tuningAdvice(tinyConfig(), { batchSize: 32, seqLen: 64 }, wasmTensorBudgetBytes)).toBeUndefined()
  })
})
