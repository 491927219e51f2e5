import { describe, expect, it } from "vitest"
import { units } from "../../src/tasks/Units.ts"

describe("units", () => {
  it("converts with one worked step that is correct and ends in the answer", () => {
    const ops = new Set<string>()
    for (const e of units({}, 1).take("train", 1000)) {
      expect(e.prompt).toMatch(/^how many [a-z]+ in \d+ [a-z]+\?\n$/)
      const [, a, op, b, c] = /^(\d+)([*/])(\d+)=(\d+)\n#### (\d+)$/.exec(e.completion)!
      expect(op === "*" ? Number(a) * Number(b) : Number(a) / Number(b)).toBe(Number(c))
      expect(e.completion.endsWith(`#### ${c}`)).toBe(true)
      expect(e.answer).toBe(c)
      expect(e.prompt).toContain(` ${a} `)
      ops.add(op)
    }
    expect([...ops].sort()).toEqual(["*", "/"])
  })

  it("grades the reference right and a wrong factor wrong", () => {
    const task = units({}, 2)
    for (const e of task.take("test", 300)) {
      expect(task.grade(e, e.completion)).toBe(true)
      expect(task.grade(e, `#### ${Number(e.answer) * 10}`)).toBe(false)
    }
  })

  it("tests problems made of what training teaches: the same unit pairs, hundreds of unseen quantities", () => {
    const pair = (prompt: string) => prompt.replace(/\d+/, "N")
    const trained = new Set(units({}, 1).take("train", 5000).map((e) => pair(e.prompt)))
    const test = units({}, 1).take("test", 1000)
    // (a quantity of 1 names its unit in the singular, a prompt of its own)
    for (const e of test.filter((e) => !/ in 1 /.test(e.prompt))) expect(trained).toContain(pair(e.prompt))
    expect(new Set(test.map((e) => e.prompt)).size).toBeGreaterThan(150)
    for (const e of test) expect([10, 100, 1000]).toContain(Number(/[*/](\d+)=/.exec(e.completion)![1]))
  })

  it("knobs: maxQuantity bounds the larger unit's count, ops picks the direction", () => {
    for (const e of units({ maxQuantity: 3, ops: ["*"] }, 3).take("train", 200)) {
      const [, a, op] = /^(\d+)([*/])/.exec(e.completion)!
      expect(op).toBe("*")
      expect(Number(a)).toBeLessThanOrEqual(3)
    }
    expect(units({ ops: ["/", "*", "/"] }).knobs.ops).toEqual(["*", "/"])
  })
})
