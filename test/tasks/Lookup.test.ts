import { describe, expect, it } from "vitest"
import { lookup } from "../../src/tasks/Lookup.ts"

describe("lookup", () => {
  it("lists distinct keys with digit values, asks for one of them and restates its pair", () => {
    for (const e of lookup({}, 1).take("train", 500)) {
      const match = /^((?:[a-z]=\d ?)+)\. ([a-z])\?\n$/.exec(e.prompt)
      expect(match).not.toBeNull()
      const pairs = new Map(match![1].split(" ").map((pair) => pair.split("=") as [string, string]))
      expect(pairs.size).toBe(match![1].split(" ").length)
      expect(pairs.size).toBeGreaterThanOrEqual(2)
      expect(pairs.size).toBeLessThanOrEqual(6)
      expect(e.answer).toBe(pairs.get(match![2]))
      expect(e.completion).toBe(`${match![2]}=${e.answer}\n#### ${e.answer}`)
    }
  })

  it("grades the reference right and another digit wrong", () => {
    const task = lookup({}, 2)
    for (const e of task.take("test", 300)) {
      expect(task.grade(e, e.completion)).toBe(true)
      expect(task.grade(e, `#### ${(Number(e.answer) + 1) % 10}`)).toBe(false)
    }
  })

  it("minPairs / maxPairs set the number of pairs", () => {
    for (const e of lookup({ minPairs: 12, maxPairs: 12 }, 3).take("train", 100)) expect(e.prompt.match(/=/g)).toHaveLength(12)
  })
})
