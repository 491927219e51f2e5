import { describe, expect, it } from "vitest"
import { compare } from "../../src/tasks/Compare.ts"

describe("compare", () => {
  it("asks for the larger of two different numbers, often ones that differ in one digit", () => {
    let close = 0
    for (const e of compare({}, 1).take("train", 1000)) {
      const match = /^larger of (\d{1,3}) and (\d{1,3})\?\n$/.exec(e.prompt)
      expect(match).not.toBeNull()
      const [a, b] = [match![1], match![2]]
      expect(a).not.toBe(b)
      expect(e.answer).toBe(String(Math.max(Number(a), Number(b))))
      expect(e.completion).toBe(`#### ${e.answer}`)
      if (a.length === b.length && [...a].filter((d, i) => d !== b[i]).length === 1) close++
    }
    expect(close).toBeGreaterThan(400)
  })

  it("grades the reference right and the smaller number wrong", () => {
    const task = compare({}, 2)
    for (const e of task.take("test", 300)) {
      const [, a, b] = /of (\d+) and (\d+)/.exec(e.prompt)!
      expect(task.grade(e, e.completion)).toBe(true)
      expect(task.grade(e, `#### ${Math.min(Number(a), Number(b))}`)).toBe(false)
    }
  })

  it("digits bounds the numbers", () => {
    let largest = 0
    for (const e of compare({ digits: 5 }, 3).take("train", 300)) {
      for (const n of e.prompt.match(/\d+/g)!.map(Number)) largest = Math.max(largest, n)
    }
    expect(largest).toBeLessThan(100_000)
    expect(largest).toBeGreaterThanOrEqual(10_000)
  })
})
