import { describe, expect, it } from "vitest"
import { compare } from "../../src/tasks/Compare.ts"

const numbersOf = (prompt: string) => prompt.match(/\d+/g)!

describe("compare", () => {
  it("asks for the largest of three different numbers, often ones that differ from the first in one digit", () => {
    let close = 0
    let firstWins = 0
    for (const e of compare({}, 1).take("train", 1000)) {
      expect(e.prompt).toMatch(/^largest of \d{1,3}, \d{1,3} and \d{1,3}\?\n$/)
      const numbers = numbersOf(e.prompt)
      expect(new Set(numbers).size).toBe(3)
      expect(e.answer).toBe(String(Math.max(...numbers.map(Number))))
      expect(e.completion).toBe(`#### ${e.answer}`)
      const [a, b] = numbers
      if (a.length === b.length && [...a].filter((d, i) => d !== b[i]).length === 1) close++
      if (e.answer === a) firstWins++
    }
    expect(close).toBeGreaterThan(400)
    // no position is a safe guess
    expect(firstWins).toBeLessThan(500)
  })

  it("grades the reference right and every other number wrong", () => {
    const task = compare({}, 2)
    for (const e of task.take("test", 300)) {
      expect(task.grade(e, e.completion)).toBe(true)
      for (const n of numbersOf(e.prompt).filter((n) => n !== e.answer)) expect(task.grade(e, `#### ${n}`)).toBe(false)
    }
  })

  it("digits bounds the numbers, numbers says how many", () => {
    let largest = 0
    for (const e of compare({ digits: 5, numbers: 2 }, 3).take("train", 300)) {
      expect(e.prompt).toMatch(/^largest of \d+ and \d+\?\n$/)
      for (const n of numbersOf(e.prompt).map(Number)) largest = Math.max(largest, n)
    }
    expect(largest).toBeLessThan(100_000)
    expect(largest).toBeGreaterThanOrEqual(10_000)
    for (const e of compare({ numbers: 6 }, 3).take("train", 50)) expect(numbersOf(e.prompt)).toHaveLength(6)
  })
})
