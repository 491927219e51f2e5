import { describe, expect, it } from "vitest"
import { reverse } from "../../src/tasks/Reverse.ts"

describe("reverse", () => {
  it("asks to reverse a string of letters and answers with it backwards", () => {
    for (const e of reverse({}, 1).take("train", 500)) {
      const match = /^reverse ([a-z]{2,5})\n$/.exec(e.prompt)
      expect(match).not.toBeNull()
      expect([...e.answer].reverse().join("")).toBe(match![1])
      expect(e.completion).toBe(`#### ${e.answer}`)
    }
  })

  it("grades the reference right and the unreversed or shortened string wrong", () => {
    const task = reverse({}, 2)
    for (const e of task.take("test", 300)) {
      expect(task.grade(e, e.completion)).toBe(true)
      expect(task.extract(e.completion)).toBe(e.answer)
      const original = [...e.answer].reverse().join("")
      if (original !== e.answer) expect(task.grade(e, `#### ${original}`)).toBe(false)
      expect(task.grade(e, `#### ${e.answer.slice(0, -1)}`)).toBe(false)
      expect(task.grade(e, e.answer)).toBe(false)
    }
  })

  it("minLength / maxLength set the length", () => {
    const lengths = new Set(reverse({ minLength: 5, maxLength: 6 }, 3).take("train", 200).map((e) => e.answer.length))
    expect([...lengths].sort()).toEqual([5, 6])
  })
})
