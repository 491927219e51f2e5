import { describe, expect, it } from "vitest"
import { failedGates } from "../../src/pipeline/Gates.ts"

const gates = { accuracyRetained: 0.95, retries: 2, onFailure: "stop" as const }

describe("quality gates", () => {
  it("pass at the floor and fail just below it, naming a floor that differs from the accuracy shown", () => {
    const original = { arith: { examples: 200, accuracy: 0.995 } }
    // 0.95 × 0.995 = 0.9452499…: 94.5% fails, yet rounds to the same one-decimal figure as the floor.
    const failures = failedGates(gates, { arith: { examples: 200, accuracy: 0.945 } }, original)
    expect(failures).toEqual(["arith accuracy 94.5% is below 95.0% of the original 99.5% (94.52%)"])
    expect(failedGates(gates, { arith: { examples: 200, accuracy: 0.95 } }, original)).toEqual([])
  })

  it("checks the loss increase on perplexity datasets and ignores datasets the model was not scored on", () => {
    const original = { general: { examples: 50, perplexity: 2 }, arith: { examples: 50, accuracy: 0.9 } }
    const lossGate = { retries: 2, onFailure: "stop" as const, lossIncrease: 0.1 }
    expect(failedGates(lossGate, { general: { examples: 50, perplexity: 2 * Math.exp(0.09) } }, original)).toEqual([])
    const failed = failedGates(lossGate, { general: { examples: 50, perplexity: 2 * Math.exp(0.2) } }, original)
    expect(failed).toHaveLength(1)
    expect(failed[0]).toContain("general loss rose by 0.200 nats")
  })
})
