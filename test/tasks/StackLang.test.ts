import { describe, expect, it } from "vitest"
import { defaultLimits, floorDiv, floorMod, run } from "../../src/tasks/StackLang.ts"

const value = (program: string, input: number) => {
  const result = run(program, input)
  if (!result.ok) throw new Error(`${program} failed: ${result.error}`)
  return result.value
}
const error = (program: string, input = 3) => {
  const result = run(program, input)
  return result.ok ? `ok ${result.value}` : result.error
}

describe("StackLang.run", () => {
  it("evaluates postfix arithmetic on the input", () => {
    expect(value("x3+", 4)).toBe(7)
    expect(value("3x+", 4)).toBe(7)
    expect(value("x3*7mx4%-", 5)).toBe(14)
    expect(value("xd*", -6)).toBe(36)
    expect(value("xa", -6)).toBe(6)
    expect(value("x5n", 9)).toBe(5)
    expect(value("x 3 +", 1)).toBe(4) // spaces are ignored
  })

  it("uses floor division and floor modulo", () => {
    expect(value("x3/", -7)).toBe(-3)
    expect(value("x3%", -7)).toBe(2)
    expect(value("x3/", 7)).toBe(2)
    for (let a = -20; a <= 20; a++) {
      for (const b of [-3, -2, 2, 3, 7]) {
        expect(floorDiv(a, b)).toBe(Math.floor(a / b))
        expect(floorDiv(a, b) * b + floorMod(a, b)).toBe(a)
      }
    }
  })

  it("has stack words, comparisons and select", () => {
    expect(value("x2s-", 5)).toBe(-3) // swap: 2 - x
    expect(value("x2o+*", 5)).toBe(35) // over: x * (2 + x)
    expect(value("xdp", 5)).toBe(5)
    expect(value("x3<", 2)).toBe(1)
    expect(value("x3>", 2)).toBe(0)
    expect(value("x3=", 3)).toBe(1)
    expect(value("12x?", 0)).toBe(2)
    expect(value("12x?", 5)).toBe(1)
  })

  it("runs bounded loops", () => {
    // sum 1..x: [acc, v] → [acc + v, v - 1] while v ≠ 0, then drop v
    expect(value("0x[so+s1-]p", 4)).toBe(10)
    expect(value("0x[so+s1-]p", 0)).toBe(0)
    expect(value("x[1-]", 100)).toBe(0)
  })

  it("stops an infinite loop at the step limit", () => {
    expect(error("1[]")).toBe("step-limit")
    expect(error("x[1+]", 1)).toBe("step-limit")
    expect(error("x[1-]", 400)).toBe("step-limit") // terminates, but only after > maxSteps steps
    const result = run("1[]", 0)
    expect(result.steps).toBe(defaultLimits.maxSteps + 1)
  })

  it("stops a stack blow-up at the depth limit", () => {
    expect(error("1[1]")).toBe("stack-overflow")
    expect(error("x[d]", 1)).toBe("stack-overflow")
  })

  it("stops numbers that grow without bound", () => {
    expect(error("x[d*]", 2)).toBe("number-too-large")
    expect(error("9d*d*d*d*d*")).toBe("number-too-large")
    expect(run("x[d*]", 2, { ...defaultLimits, maxAbs: 100 })).toMatchObject({ ok: false, error: "number-too-large" })
  })

  it("rejects malformed programs and bad results", () => {
    expect(error("+")).toBe("underflow")
    expect(error("x+")).toBe("underflow")
    expect(error("x?")).toBe("underflow")
    expect(error("x0/")).toBe("division-by-zero")
    expect(error("x0%")).toBe("division-by-zero")
    expect(error("xq")).toBe("bad-instruction")
    expect(error("X")).toBe("bad-instruction")
    expect(error("x[")).toBe("unbalanced")
    expect(error("x]")).toBe("unbalanced")
    expect(error("")).toBe("no-single-result")
    expect(error("xx")).toBe("no-single-result")
    expect(error("x" + "1+".repeat(40))).toBe("too-long")
  })

  it("never throws on random programs and always ends within its limits", () => {
    const alphabet = "x0123456789+-*/%mn<>=adsop?[] "
    let seed = 1
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0)
    for (let i = 0; i < 5000; i++) {
      const length = 1 + (next() % 30)
      let program = ""
      for (let j = 0; j < length; j++) program += alphabet[next() % alphabet.length]
      const result = run(program, (next() % 41) - 20)
      expect(result.steps).toBeLessThanOrEqual(defaultLimits.maxSteps + 1)
      if (result.ok) expect(Math.abs(result.value)).toBeLessThanOrEqual(defaultLimits.maxAbs)
    }
  })
})
