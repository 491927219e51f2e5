import { describe, expect, it } from "vitest"
import { decodeTests, encodeTests, INPUT_MAX, INPUT_MIN, program, programGrader } from "../../src/tasks/Program.ts"
import { floorDiv, floorMod, run } from "../../src/tasks/StackLang.ts"

/**
 * An independent reading of the prompt's formula (recursive descent, usual precedence, left
 * associative), so the test checks that the prompt says what the hidden tests expect.
 */
const parseFormula = (text: string): ((x: number) => number) => {
  let i = 0
  const peek = () => text[i]
  const eat = (s: string) => {
    if (!text.startsWith(s, i)) throw new Error(`expected ${s} at ${i} in ${text}`)
    i += s.length
  }
  const expr = (): (x: number) => number => {
    let left = term()
    while (peek() === "+" || peek() === "-") {
      const op = text[i++]
      const l = left
      const r = term()
      left = op === "+" ? (x) => l(x) + r(x) : (x) => l(x) - r(x)
    }
    return left
  }
  const term = (): (x: number) => number => {
    let left = factor()
    while (peek() === "*" || peek() === "/" || peek() === "%") {
      const op = text[i++]
      const l = left
      const r = factor()
      left = op === "*" ? (x) => l(x) * r(x) : op === "/" ? (x) => floorDiv(l(x), r(x)) : (x) => floorMod(l(x), r(x))
    }
    return left
  }
  const factor = (): (x: number) => number => {
    const c = peek()
    if (c >= "0" && c <= "9") {
      i++
      return () => Number(c)
    }
    if (c === "(") {
      eat("(")
      const inner = expr()
      eat(")")
      return inner
    }
    for (const fn of ["max", "min", "abs", "sq"]) {
      if (text.startsWith(fn + "(", i)) {
        eat(fn + "(")
        const a = expr()
        if (fn === "abs" || fn === "sq") {
          eat(")")
          return fn === "abs" ? (x) => Math.abs(a(x)) : (x) => a(x) * a(x)
        }
        eat(",")
        const b = expr()
        eat(")")
        return fn === "max" ? (x) => Math.max(a(x), b(x)) : (x) => Math.min(a(x), b(x))
      }
    }
    eat("x")
    return (x) => x
  }
  const f = expr()
  if (i !== text.length) throw new Error(`trailing text at ${i} in ${text}`)
  return f
}

const formulaOf = (prompt: string) => {
  const match = /^f\(x\)=(.+)\n$/.exec(prompt)
  if (match === null) throw new Error(`bad prompt ${JSON.stringify(prompt)}`)
  return match[1]
}

describe("program", () => {
  it("has the documented format", () => {
    const task = program()
    for (const e of task.take("train", 100)) {
      expect(e.prompt).toMatch(/^f\(x\)=[-+*/%(),0-9xmaxinbsq]+\n$/)
      expect(e.completion).toMatch(/^[x0-9+\-*/%mnad]+$/)
      const tests = decodeTests(e.answer)!
      expect(tests).toHaveLength(5)
      for (const [input] of tests) expect(input >= INPUT_MIN && input <= INPUT_MAX).toBe(true)
    }
  })

  it("reference solutions pass their own hidden tests, for many seeds and sizes", () => {
    let checked = 0
    for (let seed = 0; seed < 10; seed++) {
      for (const knobs of [{}, { minOps: 4, maxOps: 6, tests: 8 }]) {
        const task = program(knobs, seed)
        for (const [split, count] of [["train", 200], ["test", 50]] as const) {
          for (const e of task.take(split, count)) {
            expect(task.grade(e, e.completion)).toBe(true)
            expect(e.completion.length).toBeLessThanOrEqual(30)
            checked++
          }
        }
      }
    }
    expect(checked).toBe(5000)
  })

  it("the prompt's formula, read independently, agrees with the hidden tests", () => {
    for (const e of program({ maxOps: 5, maxChars: 200 }, 3).take("train", 1500)) {
      const f = parseFormula(formulaOf(e.prompt))
      for (const [input, output] of decodeTests(e.answer)!) expect(f(input) || 0).toBe(output)
    }
  })

  it("accepts any program computing the same function and rejects others", () => {
    const e = { prompt: "f(x)=max(x*3,7)-x%4\n", completion: "x3*7mx4%-", answer: "" }
    const tests = [-7, 0, 4, 11, 15].map((x) => [x, Math.max(x * 3, 7) - floorMod(x, 4)] as [number, number])
    const example = { ...e, answer: encodeTests(tests) }
    expect(programGrader.grade(example, "x3*7mx4%-")).toBe(true)
    expect(programGrader.grade(example, "7x3*mx4%-")).toBe(true) // max is commutative
    expect(programGrader.grade(example, "3x*7m x4%-")).toBe(true) // spaces are ignored
    expect(programGrader.grade(example, "x3*7mx4%-\nanything after the first line")).toBe(true)
    expect(programGrader.grade(example, "x3*7m")).toBe(false)
    expect(programGrader.grade(example, "x3*7mx4%+")).toBe(false)
    expect(programGrader.grade(example, "x3*7nx4%-")).toBe(false)
    expect(programGrader.grade(example, "1[]")).toBe(false) // runs forever
    expect(programGrader.grade(example, "1[1]")).toBe(false) // blows the stack
    expect(programGrader.grade(example, "x[d*]")).toBe(false) // numbers explode
    expect(programGrader.grade(example, "x0/")).toBe(false)
    expect(programGrader.grade(example, "")).toBe(false)
    expect(programGrader.grade(example, "max(x*3,7)-x%4")).toBe(false)
    expect(programGrader.extract("  x3+ \nmore")).toBe("x3+")
    expect(programGrader.extract("\n")).toBeUndefined()
  })

  it("a program that is right on some tests only fails", () => {
    const task = program({}, 8)
    let partial = 0
    for (const e of task.take("test", 200)) {
      const tests = decodeTests(e.answer)!
      // a constant program returning the first expected output
      const first = tests[0][1]
      if (first >= 0 && first <= 9) {
        expect(task.grade(e, String(first))).toBe(false) // outputs are never constant across the tests
        partial++
      }
    }
    expect(partial).toBeGreaterThan(0)
  })

  it("operator count and op set are real knobs", () => {
    const opsIn = (formula: string) => (formula.match(/max|min|abs|sq|[-+*/%]/g) ?? []).length
    for (const [minOps, maxOps] of [[1, 1], [2, 3], [5, 6]] as const) {
      const counts = new Set(program({ minOps, maxOps, maxChars: 300 }, 9).take("train", 300).map((e) => opsIn(formulaOf(e.prompt))))
      expect(Math.min(...counts)).toBe(minOps)
      expect(Math.max(...counts)).toBe(maxOps)
    }
    for (const e of program({ ops: ["+", "max"], maxOps: 3 }, 9).take("train", 200)) {
      expect(formulaOf(e.prompt)).toMatch(/^[-+x0-9max(),]+$/)
      expect(formulaOf(e.prompt)).not.toMatch(/[-*/%]|min|abs|sq/)
    }
    expect(decodeTests(program({ tests: 9 }).example("train", 0).answer)).toHaveLength(9)
  })

  it("reference programs run well inside the interpreter's limits", () => {
    for (const e of program({ minOps: 6, maxOps: 8, maxChars: 300 }, 10).take("train", 300)) {
      for (const [input] of decodeTests(e.answer)!) {
        const result = run(e.completion, input)
        expect(result.ok).toBe(true)
        expect(result.steps).toBeLessThan(50)
      }
    }
  })
})
