import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { countParams } from "../../src/model/Params.ts"
import { InvalidPruneRequest } from "../../src/prune/Errors.ts"
import { halfStep, type ScheduleKind, ScheduleKinds, scheduledCounts, targetCounts } from "../../src/prune/Schedule.ts"
import type { NeuronScores } from "../../src/prune/Scores.ts"
import { keepCount, keepHighest, selectFraction, selectGlobal, selectUniform } from "../../src/prune/Select.ts"
import { tinyConfig } from "../helpers/backend.ts"

describe("schedules", () => {
  const after = (schedule: ScheduleKind, start: Array<number>, end: Array<number>, n: number) =>
    Array.from({ length: n }, (_, i) => scheduledCounts(schedule, start, end, i + 1, n))

  it("constant: the same number of units removed in every iteration (the paper's fixed step)", () => {
    expect(after("constant", [100], [60], 4)).toEqual([[90], [80], [70], [60]])
    // The step is per layer, from each layer's own width.
    expect(after("constant", [8, 6], [4, 4], 2)).toEqual([[6, 5], [4, 4]])
  })

  it("cubic: large steps first, small ones last; one-shot: all at once", () => {
    const cubic = after("cubic", [100], [36], 4).map(([k]) => k)
    expect(cubic).toEqual([100 - Math.round(64 * (1 - 0.75 ** 3)), 100 - 56, 100 - 63, 36])
    const steps = cubic.map((k, i) => (i === 0 ? 100 : cubic[i - 1]) - k)
    expect(steps).toEqual([...steps].sort((a, b) => b - a))
    expect(after("one-shot", [100], [36], 3)).toEqual([[36], [36], [36]])
  })

  it("every schedule is distinct, non-increasing, and ends exactly at the target (and stays there)", () => {
    const seen = new Set<string>()
    for (const schedule of ScheduleKinds) {
      for (const [start, end] of [[512, 256], [24, 23], [13, 1]]) {
        const kept = after(schedule, [start], [end], 9).map(([k]) => k)
        expect(kept.at(-1)).toBe(end)
        kept.forEach((k, i) => expect(k).toBeLessThanOrEqual(i === 0 ? start : kept[i - 1]))
        expect(scheduledCounts(schedule, [start], [end], 12, 9)).toEqual([end])
      }
      seen.add(JSON.stringify(after(schedule, [512], [256], 9)))
    }
    expect(seen.size).toBe(ScheduleKinds.length)
  })

  it("a rolled-back step is retried halfway, rounded towards the current size", () => {
    expect(halfStep([64, 64], [40, 16])).toEqual([52, 40])
    expect(halfStep([52], [51])).toEqual([52])
  })
})

describe("targets", () => {
  const config = tinyConfig({}, { numLayers: 4, intermediateSize: 64, numHeads: 4, numKeyValueHeads: 4 })
  const counts = (unit: "neurons" | "heads" | "layers", target: Parameters<typeof targetCounts>[2]) =>
    Effect.runSync(targetCounts(config, unit, target))

  it("a fraction of units rounds to a legal count per layer", () => {
    expect(counts("neurons", { kind: "fraction", keep: 0.75 })).toEqual([48, 48, 48, 48])
    expect(counts("heads", { kind: "fraction", keep: 0.6 })).toEqual([2, 2, 2, 2])
    expect(counts("heads", { kind: "fraction", keep: 0.01 })).toEqual([1, 1, 1, 1])
    expect(counts("layers", { kind: "fraction", keep: 0.5 })).toEqual([2])
    expect(counts("neurons", { kind: "units", keep: 1000 })).toEqual([64, 64, 64, 64])
  })

  it("a parameter fraction is of the non-embedding parameters, as close as whole units allow without exceeding it", () => {
    const size = (k: number) =>
      countParams({ ...config, layers: config.layers.map((l) => ({ ...l, intermediateSize: k })) }).nonEmbedding
    const keep = counts("neurons", { kind: "parameters", keep: 0.8 })
    expect(new Set(keep).size).toBe(1)
    // 4 layers × (1024 attention + 32 norms + 48 per neuron) + 16 final norm + 272 LM head = 16800;
    // 0.8 of it leaves (13440 − 4512) / 192 = 46.5 neurons per layer.
    expect(keep[0]).toBe(46)
    expect(size(keep[0])).toBeLessThanOrEqual(0.8 * size(64))
    expect(size(keep[0] + 1)).toBeGreaterThan(0.8 * size(64))
  })

  it("unreachable or nonsensical targets are InvalidPruneRequest", () => {
    for (const [unit, target] of [
      ["neurons", { kind: "parameters", keep: 0.2 }],
      ["neurons", { kind: "fraction", keep: 0 }],
      ["heads", { kind: "fraction", keep: 1.5 }],
      ["layers", { kind: "units", keep: 0 }]
    ] as const) {
      const error = Effect.runSync(Effect.flip(targetCounts(config, unit, target)))
      expect(error).toBeInstanceOf(InvalidPruneRequest)
    }
  })
})

describe("selection", () => {
  const scores = (perLayer: Array<Array<number>>): NeuronScores => ({
    unit: "neurons",
    scorer: "activation",
    perLayer: perLayer.map((v) => Float64Array.from(v)),
    samples: 0,
    tokens: 0
  })

  it("keeps the highest scores, in index order; ties remove the lower index first; NaN goes first", () => {
    expect(keepHighest([0.5, 0.1, 0.9, 0.3], 2)).toEqual([0, 2])
    expect(keepHighest([1, 1, 1, 1], 3)).toEqual([1, 2, 3])
    expect(keepHighest([NaN, -5, 1], 2)).toEqual([1, 2])
    expect(keepCount(24, 0.75)).toBe(18)
    expect(keepCount(3, 0.1)).toBe(1)
  })

  it("uniform keeps the same count per layer, global ranks across layers but never empties a layer", () => {
    const s = scores([[5, 6, 7, 8], [0.1, 0.2, 0.3, 0.4]])
    expect(selectUniform(s, 2)).toEqual({ unit: "neurons", keep: [[2, 3], [2, 3]] })
    expect(selectGlobal(s, 4)).toEqual({ unit: "neurons", keep: [[1, 2, 3], [3]] })
    expect(Effect.runSync(selectFraction(tinyConfig({}, { intermediateSize: 4 }), s, 0.5, "global"))).toEqual({
      unit: "neurons",
      keep: [[1, 2, 3], [3]]
    })
  })
})
