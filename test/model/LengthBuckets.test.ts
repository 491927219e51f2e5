import { describe, expect, it } from "@effect/vitest"
import { toModelConfig } from "../../src/io/HfConfig.ts"
import { shapePresets } from "../../src/io/ShapePresets.ts"
import type { LossBatch } from "../../src/model/Blockwise.ts"
import { lengthBuckets } from "../../src/model/LengthBuckets.ts"
import { tinyConfig } from "../helpers/backend.ts"

/** Right-padded rows whose last `answer` positions are weighted, ids and targets numbering each position. */
const batchOf = (lengths: ReadonlyArray<number>, answer = 2): LossBatch => {
  const T = Math.max(...lengths)
  const ids = new Int32Array(lengths.length * T)
  const targets = new Int32Array(lengths.length * T)
  const weights = new Float32Array(lengths.length * T)
  lengths.forEach((n, b) => {
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = t < n ? 100 * b + t : 0
      targets[b * T + t] = t < n ? 100 * b + t + 1 : 0
      if (t < n && t >= n - answer) weights[b * T + t] = 1
    }
  })
  return { ids, targets, weights, batchSize: lengths.length, seqLen: T }
}

const tiny = tinyConfig({}, { numLayers: 2 })
const smollm = toModelConfig(shapePresets["smollm2-135m"])

describe("length buckets", () => {
  it("with no fixed cost, cuts every row's padding and keeps each row's content", () => {
    const batch = batchOf([3, 9, 4, 9, 3])
    const parts = lengthBuckets(tiny, batch, 0)
    expect(parts.map((p) => [p.batchSize, p.seqLen])).toEqual([[2, 3], [1, 4], [2, 9]])
    expect(parts.map((p) => Array.from(p.ids))).toEqual([
      [0, 1, 2, 400, 401, 402],
      [200, 201, 202, 203],
      [100, 101, 102, 103, 104, 105, 106, 107, 108, 300, 301, 302, 303, 304, 305, 306, 307, 308]
    ])
    expect(Array.from(parts[1].targets)).toEqual([201, 202, 203, 204])
    expect(Array.from(parts[1].weights)).toEqual([0, 0, 1, 1])
    // Every part divides by the whole batch's weight: the parts' means add up to the batch's.
    expect(parts.map((p) => p.normaliser)).toEqual([10, 10, 10])
    expect(parts.reduce((n, p) => n + p.weights.reduce((a, w) => a + w, 0), 0)).toBe(10)
  })

  it("cuts a row after its last weighted position, and drops a row with none", () => {
    const batch = batchOf([6, 6, 2])
    batch.weights.fill(0, 0, 6)
    batch.weights.fill(0, 6, 12)
    batch.weights[6 + 2] = 1 // row 1: only position 2
    const parts = lengthBuckets(tiny, batch, 0)
    expect(parts.map((p) => [p.batchSize, p.seqLen])).toEqual([[1, 2], [1, 3]])
    expect(Array.from(parts[1].ids)).toEqual([100, 101, 102])
    expect(parts.map((p) => p.normaliser)).toEqual([3, 3])
  })

  it("keeps the batch itself when cutting saves nothing, or nothing is weighted", () => {
    const even = batchOf([5, 5, 5])
    expect(lengthBuckets(smollm, even, 0)[0].ids).toBe(even.ids)
    const unweighted = batchOf([2, 7])
    unweighted.weights.fill(0)
    const [whole] = lengthBuckets(tiny, unweighted, 0)
    expect(whole.ids).toBe(unweighted.ids)
    expect(whole.normaliser).toBe(1)
  })

  it("weighs the fixed cost of a micro-batch against the rows it saves, by the model's size", () => {
    const batch = batchOf([40, 45, 52, 60, 75, 90, 110, 116])
    // On a tiny model a kernel call costs more than a row's arithmetic: one batch, unchanged.
    expect(lengthBuckets(tiny, batch)).toEqual([{ ...batch, normaliser: 16 }])
    expect(lengthBuckets(tiny, batch, Infinity)[0].ids).toBe(batch.ids)
    // On smollm2-135m a row is worth more than the call: the batch splits, with fewer rows.
    const parts = lengthBuckets(smollm, batch)
    const rows = parts.reduce((n, p) => n + p.batchSize * p.seqLen, 0)
    expect(parts.length).toBeGreaterThan(1)
    expect(parts.length).toBeLessThan(8)
    expect(rows).toBeLessThan(0.85 * 8 * 116)
    expect(parts.reduce((n, p) => n + p.batchSize, 0)).toBe(8)
  })
})
