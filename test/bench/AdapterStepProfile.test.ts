/**
 * The FLOP count adapter-step-profile gives each recorded BatchMatMul, from its first operand's
 * and its output's shapes only (the profile keeps no transpose flags), against hand counts.
 */
import { describe, expect, it } from "vitest"
import { matMulFlops } from "../../bench/adapterStepProfile.ts"

describe("matMulFlops", () => {
  it("counts 2·batch·M·N·K whichever way A is stored", () => {
    // [928,576]·[576,1536]: a weight product.
    expect(matMulFlops([928, 576], [928, 1536])).toBe(2 * 928 * 1536 * 576)
    // Aᵀ·B with A stored [K, M] = [928, 576] and output [576, 1536] (a weight gradient): K = 928.
    expect(matMulFlops([928, 576], [576, 1536])).toBe(2 * 576 * 1536 * 928)
    // Batched attention scores [24,348,64]·[24,116,64]ᵀ → [24,348,116].
    expect(matMulFlops([24, 348, 64], [24, 348, 116])).toBe(2 * 24 * 348 * 116 * 64)
    // A broadcast over the batch (one matrix for all items).
    expect(matMulFlops([1, 40, 16], [2, 3, 40, 30])).toBe(2 * 6 * 40 * 30 * 16)
  })
})
