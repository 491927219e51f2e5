import { describe, expect, it } from "vitest"
import { finalAnswer, finalAnswerGrader, normalizeAnswer, normalizeNumber } from "../../src/tasks/Answer.ts"

describe("normalizeNumber", () => {
  it.each([
    ["1000", "1000"],
    ["1,000", "1000"],
    ["1000.0", "1000"],
    ["1,000.00", "1000"],
    ["$1,000", "1000"],
    ["+1000", "1000"],
    ["001000", "1000"],
    ["1000.", "1000"],
    ["-0", "0"],
    ["-0.0", "0"],
    [".5", "0.5"],
    ["0.50", "0.5"],
    ["-12.340", "-12.34"],
    ["1 000", "1000"],
    ["123456789012345678901234567890", "123456789012345678901234567890"]
  ])("%s → %s", (text, expected) => {
    expect(normalizeNumber(text)).toBe(expected)
  })

  it.each(["", "-", ".", "abc", "12a", "1.2.3", "1e3", "5/2", "12 eggs"])("rejects %j", (text) => {
    expect(normalizeNumber(text)).toBeUndefined()
  })
})

describe("finalAnswer", () => {
  it("takes the text after the first #### up to the end of its line", () => {
    expect(finalAnswer("a\nb\n#### 42")).toBe("42")
    expect(finalAnswer("3+4=7\n####7\n#### 8")).toBe("7")
    expect(finalAnswer("  ####   1,000  \nmore text")).toBe("1,000")
    expect(finalAnswer("so the answer is #### 4")).toBe("4")
  })
  it("is undefined without a #### line or with nothing after it", () => {
    expect(finalAnswer("the answer is 42")).toBeUndefined()
    expect(finalAnswer("####")).toBeUndefined()
    expect(finalAnswer("#### \n5")).toBeUndefined() // the answer must be on the #### line
  })
})

describe("finalAnswerGrader", () => {
  const example = { prompt: "q\n", completion: "900+100=1000\n#### 1000", answer: "1000" }
  it.each([
    "900+100=1000\n#### 1000",
    "#### 1,000",
    "#### 1000.0",
    "#### $1,000.00",
    "some other reasoning\n####1000",
    "#### 1000\ntrailing garbage after the answer line"
  ])("accepts %j", (completion) => {
    expect(finalAnswerGrader.grade(example, completion)).toBe(true)
    expect(finalAnswerGrader.extract(completion)).toBe("1000")
  })
  it.each(["#### 1001", "#### 100", "#### 10000", "#### -1000", "1000", "the answer is 1000", "#### ", "#### 1000 apples"])(
    "rejects %j",
    (completion) => {
      expect(finalAnswerGrader.grade(example, completion)).toBe(false)
    }
  )
  it("compares non-numeric answers as normalised text", () => {
    expect(normalizeAnswer("  Twelve   Eggs ")).toBe("twelve eggs")
    expect(finalAnswerGrader.grade({ prompt: "", completion: "", answer: "Yes" }, "#### yes")).toBe(true)
  })
})
