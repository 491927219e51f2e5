import { describe, expect, it } from "vitest"
import { arith, arithDefaults } from "../../src/tasks/Arith.ts"

/** The steps of a chain of thought: [a, op, b, result]. */
const stepsOf = (completion: string) =>
  completion.split("\n").slice(0, -1).map((line) => {
    const match = /^(\d+)([-+*/])(\d+)=(\d+)$/.exec(line)
    if (match === null) throw new Error(`bad step line ${JSON.stringify(line)}`)
    return [Number(match[1]), match[2], Number(match[3]), Number(match[4])] as const
  })

describe("arith", () => {
  it("has the documented format", () => {
    const e = arith().example("train", 0)
    expect(e.prompt).toMatch(/^[a-z]+ has \d+ [a-z]+, [a-z0-9 ,]+\. how many now\?\n$/)
    expect(e.completion).toMatch(/^(\d+[-+*/]\d+=\d+\n)+#### \d+$/)
    expect(e.completion.endsWith(`#### ${e.answer}`)).toBe(true)
  })

  it("spells out a correct chain: each step starts from the previous result and the answer is the last", () => {
    for (const e of arith({ ops: ["+", "-", "*", "/"], maxSteps: 4, maxChars: 400 }, 2).take("train", 2000)) {
      const steps = stepsOf(e.completion)
      const start = Number(/has (\d+) /.exec(e.prompt)![1])
      expect(steps[0][0]).toBe(start)
      for (let i = 0; i < steps.length; i++) {
        const [a, op, b, c] = steps[i]
        expect(op === "+" ? a + b : op === "-" ? a - b : op === "*" ? a * b : a / b).toBe(c)
        expect(Number.isInteger(c) && c >= 0).toBe(true)
        if (i > 0) expect(a).toBe(steps[i - 1][3])
        // the operand appears in the prompt, as a digit string or as a word for doubling/tripling/halving
        expect(e.prompt.includes(` ${b}`) || /doubles|triples|halves/.test(e.prompt)).toBe(true)
      }
      expect(String(steps[steps.length - 1][3])).toBe(e.answer)
    }
  })

  it("reference completions always grade correct", () => {
    for (const seed of [0, 1, 2]) {
      const task = arith({ maxSteps: 3, ops: ["+", "-", "*", "/"], maxChars: 200 }, seed)
      for (const split of ["train", "calibration", "test"] as const) {
        for (const e of task.take(split, 500)) expect(task.grade(e, e.completion)).toBe(true)
      }
    }
  })

  it("grades equivalent writings right and wrong answers wrong", () => {
    const task = arith()
    for (const e of task.take("test", 200)) {
      const n = Number(e.answer)
      expect(task.grade(e, `#### ${n.toLocaleString("en-US")}`)).toBe(true)
      expect(task.grade(e, `#### ${n}.0`)).toBe(true)
      expect(task.grade(e, `#### ${n}.00`)).toBe(true)
      expect(task.grade(e, `blah\n####${n}\n`)).toBe(true)
      expect(task.grade(e, `#### ${n + 1}`)).toBe(false)
      expect(task.grade(e, `#### ${n * 10 + 10}`)).toBe(false)
      expect(task.grade(e, `#### ${n}.5`)).toBe(false)
      expect(task.grade(e, e.completion.replace(/\n#### \d+$/, ""))).toBe(false)
      expect(task.extract(e.completion)).toBe(e.answer)
    }
  })

  it("digits bounds the stated numbers and every intermediate value", () => {
    for (const digits of [1, 2, 3]) {
      let largest = 0
      for (const e of arith({ digits, maxSteps: 3, maxChars: 300 }, 4).take("train", 500)) {
        const stated = (e.prompt.match(/\d+/g) ?? []).map(Number)
        for (const n of stated) expect(n).toBeLessThan(10 ** digits)
        for (const [a, , , c] of stepsOf(e.completion)) {
          expect(a).toBeLessThan(10 ** (digits + 1))
          expect(c).toBeLessThan(10 ** (digits + 1))
        }
        largest = Math.max(largest, ...stated)
      }
      expect(largest).toBeGreaterThanOrEqual(10 ** (digits - 1)) // the knob is used, not just a cap
    }
  })

  it("minSteps / maxSteps set the number of steps", () => {
    const counts = new Set<number>()
    for (const e of arith({ minSteps: 2, maxSteps: 4, maxChars: 400 }, 5).take("train", 500)) {
      counts.add(stepsOf(e.completion).length)
    }
    expect([...counts].sort()).toEqual([2, 3, 4])
    for (const e of arith({ minSteps: 3, maxSteps: 3, maxChars: 400 }, 5).take("train", 100)) {
      expect(stepsOf(e.completion)).toHaveLength(3)
    }
  })

  it("ops restricts the operations", () => {
    const ops = (knobs: Parameters<typeof arith>[0]) => {
      const seen = new Set<string>()
      for (const e of arith(knobs, 6).take("train", 300)) for (const [, op] of stepsOf(e.completion)) seen.add(op)
      return [...seen].sort()
    }
    expect(ops({})).toEqual(["*", "+", "-"])
    expect(ops({ ops: ["+"] })).toEqual(["+"])
    expect(ops({ ops: ["-", "/"], maxSteps: 2 })).toEqual(["-", "/"])
    expect(ops({ ops: ["+", "-", "*", "/"], maxSteps: 3, maxChars: 300 })).toEqual(["*", "+", "-", "/"])
  })

  it("factorDigits sets the size of multipliers", () => {
    const factors = (factorDigits: number) =>
      arith({ ops: ["*"], digits: 2, factorDigits, minSteps: 1, maxSteps: 1 }, 7)
        .take("train", 300)
        .map((e) => stepsOf(e.completion)[0][2])
    expect(Math.max(...factors(1))).toBeLessThanOrEqual(9)
    expect(Math.max(...factors(2))).toBeGreaterThan(9)
  })

  it("defaults fit a 128-character context", () => {
    expect(arithDefaults).toMatchObject({ digits: 1, maxSteps: 3, maxChars: 120 })
    for (const e of arith().take("train", 2000)) expect(e.prompt.length + e.completion.length).toBeLessThanOrEqual(120)
  })
})
