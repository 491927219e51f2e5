import { describe, expect, it } from "vitest"
import { count } from "../../src/tasks/Count.ts"

describe("count", () => {
  it("asks how often a digit occurs and answers with the count", () => {
    const answers = new Set<string>()
    for (const e of count({}, 1).take("train", 1000)) {
      const match = /^count (\d) in (\d{5,12})\n$/.exec(e.prompt)
      expect(match).not.toBeNull()
      expect(e.answer).toBe(String([...match![2]].filter((d) => d === match![1]).length))
      expect(e.completion).toBe(`#### ${e.answer}`)
      answers.add(e.answer)
    }
    // zero happens (a digit not in the string) but is not the only answer
    expect(answers.has("0")).toBe(true)
    expect(answers.size).toBeGreaterThanOrEqual(4)
  })

  it("grades the reference right and other counts wrong", () => {
    const task = count({}, 2)
    for (const e of task.take("test", 300)) {
      expect(task.grade(e, e.completion)).toBe(true)
      expect(task.extract(e.completion)).toBe(e.answer)
      expect(task.grade(e, `#### ${Number(e.answer) + 1}`)).toBe(false)
      expect(task.grade(e, "")).toBe(false)
    }
  })

  it("minLength / maxLength set the length of the string", () => {
    for (const e of count({ minLength: 20, maxLength: 20 }, 3).take("train", 100)) {
      expect(/in (\d+)\n$/.exec(e.prompt)![1]).toHaveLength(20)
    }
  })
})
