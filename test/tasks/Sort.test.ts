import { describe, expect, it } from "vitest"
import { sort } from "../../src/tasks/Sort.ts"

describe("sort", () => {
  it("asks to sort a digit string and answers with its digits in order", () => {
    for (const e of sort({}, 1).take("train", 500)) {
      const match = /^sort (\d{3,6})\n$/.exec(e.prompt)
      expect(match).not.toBeNull()
      expect(e.answer).toBe([...match![1]].sort().join(""))
      expect(e.completion).toBe(`#### ${e.answer}`)
    }
  })

  it("grades the reference right and wrong orders, dropped digits and dropped zeros wrong", () => {
    const task = sort({}, 2)
    let zeros = 0
    for (const e of task.take("test", 300)) {
      expect(task.grade(e, e.completion)).toBe(true)
      expect(task.grade(e, `#### ${e.answer}\n`)).toBe(true)
      expect(task.extract(e.completion)).toBe(e.answer)
      expect(task.grade(e, `#### ${e.answer.slice(1)}`)).toBe(false)
      expect(task.grade(e, `#### ${e.answer}1`)).toBe(false)
      expect(task.grade(e, e.answer)).toBe(false) // no final line
      if (new Set(e.answer).size > 1) expect(task.grade(e, `#### ${[...e.answer].reverse().join("")}`)).toBe(false)
      if (e.answer.startsWith("0")) {
        zeros++
        expect(task.grade(e, `#### ${e.answer.replace(/^0+/, "")}`)).toBe(false)
      }
    }
    expect(zeros).toBeGreaterThan(0)
  })

  it("minLength / maxLength set the length", () => {
    const lengths = new Set(sort({ minLength: 2, maxLength: 4 }, 3).take("train", 300).map((e) => e.answer.length))
    expect([...lengths].sort()).toEqual([2, 3, 4])
  })
})
