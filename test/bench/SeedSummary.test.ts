import { describe, expect, it } from "vitest"
import { computeMatchedSteps, halfWidth } from "../../bench/qualitySkills.ts"
import { formatSeedSummary, type SeedResult, summariseSeeds } from "../../bench/seedSummary.ts"

const skills = ["arith", "sort", "units"]

const seeds: Array<SeedResult> = [
  {
    seed: 1,
    strategies: {
      original: { share: 1, accuracy: { arith: 1, sort: 0.8, units: 0 } },
      ptl: { share: 0.5, accuracy: { arith: 0.9, sort: 0.8, units: 0 } },
      "one-shot": { share: 0.5, accuracy: { arith: 0.9, sort: 0.4, units: 0.1 } }
    }
  },
  {
    seed: 2,
    strategies: {
      original: { share: 1, accuracy: { arith: 0.5, sort: 1, units: 0.5 } },
      ptl: { share: 0.48, accuracy: { arith: 0.5, sort: 0.6, units: 0.5 } }
    }
  }
]

describe("summariseSeeds", () => {
  const [original, ptl, oneShot] = summariseSeeds(seeds, skills, ["arith"])

  it("gives each strategy's accuracy per skill as mean and lowest–highest seed", () => {
    expect(ptl.strategy).toBe("ptl")
    expect(ptl.seeds).toEqual([1, 2])
    expect(ptl.accuracy.arith).toEqual({ mean: 0.7, min: 0.5, max: 0.9, perSeed: [0.9, 0.5] })
    expect(ptl.share).toMatchObject({ mean: 0.49, min: 0.48, max: 0.5 })
    expect(original.accuracy.sort.mean).toBe(0.9)
  })

  it("measures retention against the same seed's base, and a 0 kept from a 0 base as retained", () => {
    expect(ptl.retained.arith.perSeed).toEqual([0.9, 1])
    expect(ptl.retained.sort.perSeed).toEqual([1, 0.6])
    expect(ptl.retained.units.perSeed).toEqual([1, 1])
    expect(ptl.lowestRetained).toBe(0.6)
  })

  it("averages over all skills and over those recovery never trained on", () => {
    expect(ptl.meanAccuracy.perSeed).toEqual([0.5667, 0.5333])
    expect(ptl.meanUntrained.perSeed).toEqual([0.4, 0.55])
  })

  it("summarises a strategy missing in a seed over the seeds it has", () => {
    expect(oneShot.seeds).toEqual([1])
    expect(oneShot.accuracy.sort).toEqual({ mean: 0.4, min: 0.4, max: 0.4, perSeed: [0.4] })
    // Above a base of 0, retention is measured against a floor, not divided by 0.
    expect(oneShot.retained.units.mean).toBe(100)
  })

  it("prints a table of accuracy with spreads and one of retained shares", () => {
    const text = formatSeedSummary([original, ptl, oneShot], skills)
    const lines = text.split("\n")
    expect(lines[0]).toMatch(/^accuracy %\s+params\s+arith\s+sort\s+units\s+mean\s+untrained$/)
    expect(lines[2]).toMatch(/^ptl\s+49\.0%\s+70\.0 \[50\.0–90\.0\]\s+70\.0 \[60\.0–80\.0\]/)
    expect(lines[3]).toMatch(/^one-shot\s+50\.0%\s+90\.0\s+40\.0\s+10\.0\s/)
    expect(text).toContain("retained % of base")
  })
})

describe("the scratch baseline", () => {
  it("is the base at half the width and the same depth", () => {
    expect(halfWidth({ hiddenSize: 128, numLayers: 4, numHeads: 4, numKeyValueHeads: 2, intermediateSize: 512 }))
      .toEqual({ hiddenSize: 64, numLayers: 4, numHeads: 2, numKeyValueHeads: 1, intermediateSize: 256 })
    expect(halfWidth({ hiddenSize: 64, numLayers: 2, numHeads: 2, numKeyValueHeads: 1, intermediateSize: 256 }).numKeyValueHeads).toBe(1)
  })

  it("trains for the steps that cost what the base's training and PTL's tuning cost", () => {
    // The bundled base (999,040 parameters) and its half width (253,760).
    expect(computeMatchedSteps(4000, 300, 999_040, 253_760)).toBe(Math.ceil((4300 * 999_040) / 253_760))
    expect(computeMatchedSteps(100, 0, 4, 1)).toBe(400)
  })
})
