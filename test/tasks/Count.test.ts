import { describe, expect, it } from "vitest"
import { count } from "../../src/tasks/Count.ts"

describe("count", () => {
  it("asks how often a digit occurs and answers with the count", () => {
    const answers = new Map<string, number>()
    for (const e of count({}, 1).take("train", 1000)) {
      const match = /^count (\d) in (\d{3,8})\n$/.exec(e.prompt)
      expect(match).not.toBeNull()
      expect(e.answer).toBe(String([...match![2]].filter((d) => d === match![1]).length))
      expect(e.completion).toBe(`#### ${e.answer}`)
      answers.set(e.answer, (answers.get(e.answer) ?? 0) + 1)
    }
    // every count from 0 to 5 comes up, none so often that it is a safe guess
    expect([...answers.keys()].sort()).toEqual(["0", "1", "2", "3", "4", "5"])
    for (const n of answers.values()) expect(n).toBeLessThan(300)
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
