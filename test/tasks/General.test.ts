import { describe, expect, it } from "vitest"
import { general } from "../../src/tasks/General.ts"

describe("general", () => {
  it("is plain text: no prompt, no answer, sentences of lower-case words", () => {
    for (const e of general({}, 1).take("train", 500)) {
      expect(e.prompt).toBe("")
      expect(e.answer).toBe("")
      expect(e.completion).toMatch(/^[a-z]+(,? [a-z]+)*\.( [a-z]+(,? [a-z]+)*\.)*$/)
    }
  })

  it("sentence knobs set the length", () => {
    const sentences = (text: string) => text.split(".").length - 1
    const counts = new Set(general({ minSentences: 2, maxSentences: 4, maxChars: 1000 }, 2).take("train", 300).map((e) => sentences(e.completion)))
    expect([...counts].sort()).toEqual([2, 3, 4])
    for (const e of general({ maxChars: 60 }, 2).take("train", 300)) expect(e.completion.length).toBeLessThanOrEqual(60)
  })

  it("is varied: few repeats in a large sample", () => {
    const texts = general({}, 3).take("train", 2000).map((e) => e.completion)
    expect(new Set(texts).size).toBeGreaterThan(1900)
  })
})
