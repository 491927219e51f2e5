import { describe, expect, it } from "@effect/vitest"
import { toModelConfig } from "../../src/io/HfConfig.ts"
import { shapePresets } from "../../src/io/ShapePresets.ts"
import { fullTuningFootprint } from "../../src/model/Footprint.ts"
import { adapterParameters, adapterTuningFootprint, defaultAdapterSpec, tuningAdvice } from "../../src/tune/TuningMemory.ts"
import { tinyConfig } from "../helpers/backend.ts"
import { wasmHeapBudgetBytes } from "../../src/services/DeviceMemory.ts"

describe("tuning memory", () => {
  it("counts adapter parameters as rank × (in + out) per adapted projection", () => {
    // Tiny: D 16, 4 heads of 4 (2 KV), MLP 24, 2 layers.
    const perLayer = 2 * ((16 + 16) + (16 + 8) * 2 + (16 + 16) + (16 + 24) * 2 + (24 + 16))
    expect(adapterParameters(tinyConfig(), { ...defaultAdapterSpec, rank: 2 })).toBe(2 * perLayer)
  })

  it("a 0.5B model: full tuning does not fit the wasm heap, the advice names adapters, which fit", () => {
    const config = toModelConfig(shapePresets["qwen2.5-0.5b"])
    expect(fullTuningFootprint(config, 8, 128).bytes).toBeGreaterThan(wasmHeapBudgetBytes)
    expect(tuningAdvice(config, 8, 128, wasmHeapBudgetBytes)).toContain("adapters (tuner.adapter: { rank: 16")
    expect(adapterTuningFootprint(config, 8, 128, defaultAdapterSpec).bytes).toBeLessThan(wasmHeapBudgetBytes)
  })

  it("a 1.5B model fits adapter tuning only with its weights read block by block", () => {
    const config = toModelConfig(shapePresets["qwen2.5-1.5b"])
    expect(tuningAdvice(config, 8, 128, wasmHeapBudgetBytes)).toContain("block by block")
  })

  it("a tiny model fits full tuning: no advice", () => {
    expect(tuningAdvice(tinyConfig(), 32, 64, wasmHeapBudgetBytes)).toBeUndefined()
  })
})
