import { describe, expect, it } from "vitest"
import { forwardFlops } from "../../bench/forwardFlops.ts"
import { ladderShapes } from "../../bench/checkpoints.ts"
import { referenceConfig } from "../../bench/common.ts"
import { toModelConfig } from "../../src/io/HfConfig.ts"

describe("forwardFlops", () => {
  it("counts the reference model's products and attention by hand", () => {
    // d 128, 4 layers of 4 heads × 32, MLP 512, vocab 32, untied head.
    // Per layer: q, k, v, o 4·128·128 = 65 536; gate, up, down 3·128·512 = 196 608. Head 128·32 = 4 096.
    const weights = 4 * (65_536 + 196_608) + 4_096 // 1 052 672
    const f = forwardFlops(referenceConfig, 1, 64)
    expect(f.matMul).toBe(2 * 64 * weights) // 134 742 016
    // Q·Kᵀ and P·V: 2 · 2·H·hd·T² per layer = 4·4·32·64² = 2 097 152, four layers.
    expect(f.attention).toBe(8_388_608)
    expect(f.total).toBe(134_742_016 + 8_388_608)
  })

  it("matches the published parameter counts of the real shapes (products = all weights but norms and biases, head included)", () => {
    // SmolLM2-135M: 134 515 008 parameters (tied); norms 30·2·576 + 576, no biases.
    const smol = forwardFlops(toModelConfig(ladderShapes["smollm2-135m"]), 1, 512)
    expect(smol.matMul).toBe(2 * 512 * (134_515_008 - (30 * 2 * 576 + 576)))
    expect(smol.attention).toBe(30 * 4 * 9 * 64 * 512 * 512)
    // Qwen2.5-0.5B: 494 032 768 parameters (tied); norms 24·2·896 + 896, q/k/v biases 24·(896 + 2·128).
    // Attention counts the 14 query heads: grouped keys and values are shared, the products are not.
    const qwen = forwardFlops(toModelConfig(ladderShapes["qwen2.5-0.5b"]), 1, 512)
    expect(qwen.matMul).toBe(2 * 512 * (494_032_768 - (24 * 2 * 896 + 896) - 24 * (896 + 2 * 128)))
    expect(qwen.attention).toBe(24 * 4 * 14 * 64 * 512 * 512)
  })

  it("grows the products with tokens and attention with batch × sequence²", () => {
    const one = forwardFlops(referenceConfig, 1, 32)
    const wide = forwardFlops(referenceConfig, 3, 32)
    const long = forwardFlops(referenceConfig, 1, 96)
    expect(wide.matMul).toBe(3 * one.matMul)
    expect(wide.attention).toBe(3 * one.attention)
    expect(long.matMul).toBe(3 * one.matMul)
    expect(long.attention).toBe(9 * one.attention)
  })
})
