/** Properties every built-in task shares: determinism, disjoint splits, the alphabet, context fit. */
import { describe, expect, it } from "vitest"
import { ALPHABET, outsideAlphabet } from "../../src/tasks/Alphabet.ts"
import { arith } from "../../src/tasks/Arith.ts"
import { builtinTask, TaskRef } from "../../src/tasks/Builtin.ts"
import { general } from "../../src/tasks/General.ts"
import { program } from "../../src/tasks/Program.ts"
import { compare } from "../../src/tasks/Compare.ts"
import { count } from "../../src/tasks/Count.ts"
import { lookup } from "../../src/tasks/Lookup.ts"
import { reverse } from "../../src/tasks/Reverse.ts"
import { sort } from "../../src/tasks/Sort.ts"
import { units } from "../../src/tasks/Units.ts"
import { type Example, splitOf, type Task, taskNames } from "../../src/tasks/Task.ts"
import { Result, Schema } from "effect"

const makers: ReadonlyArray<readonly [string, (seed: number) => Task<object>]> = [
  ["arith", (seed) => arith({}, seed)],
  ["program", (seed) => program({}, seed)],
  ["sort", (seed) => sort({}, seed)],
  ["reverse", (seed) => reverse({}, seed)],
  ["count", (seed) => count({}, seed)],
  ["compare", (seed) => compare({}, seed)],
  ["lookup", (seed) => lookup({}, seed)],
  ["units", (seed) => units({}, seed)],
  ["general", (seed) => general({}, seed)]
]

describe.each(makers)("%s", (_name, make) => {
  it("is deterministic: same seed, same examples, in any order of access", () => {
    const a = make(7)
    const b = make(7)
    expect(a.take("train", 50)).toEqual(b.take("train", 50))
    expect(a.take("test", 20)).toEqual(b.take("test", 20))
    expect(b.example("train", 37)).toEqual(a.take("train", 50)[37])
    expect(a.chunk(3, 10)).toEqual(a.take("train", 10, 30))
  })

  it("gives different examples for a different seed", () => {
    const a = make(1).take("train", 50).map((e) => e.prompt + e.completion)
    const b = make(2).take("train", 50).map((e) => e.prompt + e.completion)
    expect(a).not.toEqual(b)
    expect(a.filter((text, i) => text === b[i]).length).toBeLessThan(10)
  })

  it("keeps train, calibration and test disjoint on the prompt over thousands of samples", () => {
    const task = make(3)
    // general has no prompt: its text is what must not repeat across splits
    const keys = (examples: ReadonlyArray<Example>) => examples.map((e) => e.prompt || e.completion)
    const trainKeys = keys(task.take("train", 4000))
    const train = new Set(trainKeys)
    const calibration = new Set(keys(task.take("calibration", 1000)))
    const test = new Set(keys(task.take("test", 1000)))
    // a second seed's training data must not touch the first seed's test set either
    const otherTrain = new Set(keys(make(4).take("train", 2000)))
    for (const key of test) {
      expect(train.has(key)).toBe(false)
      expect(calibration.has(key)).toBe(false)
      expect(otherTrain.has(key)).toBe(false)
    }
    for (const key of calibration) {
      expect(train.has(key)).toBe(false)
      expect(otherTrain.has(key)).toBe(false)
    }
    // The check has teeth: the spaces are small enough that prompts do repeat within a split,
    // so without the split rule they would repeat across splits too.
    if (task.name === "program") expect(train.size).toBeLessThan(trainKeys.length)
  })

  it("emits only characters of the exported alphabet and fits a 128-character context", () => {
    const task = make(5)
    for (const split of ["train", "calibration", "test"] as const) {
      for (const e of task.take(split, split === "train" ? 2000 : 300)) {
        expect(outsideAlphabet(e.prompt + e.completion + e.answer)).toEqual([])
        expect(e.prompt.length + e.completion.length).toBeLessThanOrEqual(120)
      }
    }
  })
})

describe("alphabet", () => {
  it("covers every task under non-default knobs too", () => {
    const tasks = [
      arith({ digits: 4, factorDigits: 2, minSteps: 3, maxSteps: 5, ops: ["+", "-", "*", "/"], maxChars: 400 }, 1),
      program({ minOps: 4, maxOps: 7, tests: 10, maxChars: 400 }, 1),
      general({ minSentences: 5, maxSentences: 8, maxChars: 1000 }, 1),
      sort({ minLength: 1, maxLength: 30 }, 1),
      reverse({ minLength: 1, maxLength: 30 }, 1),
      count({ minLength: 1, maxLength: 30 }, 1),
      compare({ digits: 9, numbers: 8, maxChars: 200 }, 1),
      lookup({ minPairs: 1, maxPairs: 26, maxChars: 200 }, 1),
      units({ maxQuantity: 999 }, 1)
    ]
    const seen = new Set<string>()
    for (const task of tasks) {
      for (const e of task.take("train", 1000)) {
        for (const ch of e.prompt + e.completion + e.answer) seen.add(ch)
      }
    }
    expect([...seen].filter((ch) => !ALPHABET.includes(ch))).toEqual([])
    expect(ALPHABET.length).toBeGreaterThanOrEqual(40)
    expect(ALPHABET.length).toBeLessThanOrEqual(60)
    expect(new Set(ALPHABET).size).toBe(ALPHABET.length)
  })
})

describe("splitOf", () => {
  it("spreads keys about 80 / 10 / 10", () => {
    const counts = { train: 0, calibration: 0, test: 0 }
    for (let i = 0; i < 20_000; i++) counts[splitOf(`key ${i}`)]++
    expect(counts.train / 20_000).toBeCloseTo(0.8, 1)
    expect(counts.calibration / 20_000).toBeCloseTo(0.1, 1)
    expect(counts.test / 20_000).toBeCloseTo(0.1, 1)
  })
})

describe("TaskRef", () => {
  const decode = Schema.decodeUnknownResult(TaskRef)
  it("decodes a reference with knobs and builds its task", () => {
    const ref = decode({ task: "arith", digits: 3, seed: 9 })
    expect(Result.isSuccess(ref)).toBe(true)
    if (Result.isSuccess(ref)) {
      const task = builtinTask(ref.success)
      expect(task.name).toBe("arith")
      expect(task.seed).toBe(9)
      expect(task.knobs).toMatchObject({ digits: 3, maxSteps: 3 })
    }
  })
  it("rejects bad knobs with a path", () => {
    const bad = decode({ task: "arith", digits: 0 })
    expect(Result.isFailure(bad) && bad.failure.message).toContain("digits")
    const crossed = decode({ task: "program", minOps: 4, maxOps: 2 })
    expect(Result.isFailure(crossed) && crossed.failure.message).toContain("minOps")
    expect(Result.isFailure(decode({ task: "poetry" }))).toBe(true)
    for (const bad of [
      { task: "sort", minLength: 0 },
      { task: "sort", minLength: 6, maxLength: 4 },
      { task: "reverse", maxLength: 41 },
      { task: "reverse", minLength: 5, maxLength: 2 },
      { task: "count", minLength: 1.5 },
      { task: "count", minLength: 9, maxLength: 3 },
      { task: "compare", digits: 13 },
      { task: "compare", maxChars: 8 },
      { task: "compare", numbers: 1 },
      { task: "lookup", minPairs: 0 },
      { task: "lookup", minPairs: 7, maxPairs: 3 },
      { task: "units", maxQuantity: 0 },
      { task: "units", ops: [] },
      { task: "units", ops: ["+"] }
    ]) {
      const decoded = decode(bad)
      expect(Result.isFailure(decoded), JSON.stringify(bad)).toBe(true)
    }
  })
  it("decodes every built-in task's name and builds it with its seed", () => {
    for (const name of taskNames) {
      const ref = decode({ task: name, seed: 4 })
      expect(Result.isSuccess(ref), name).toBe(true)
      if (Result.isSuccess(ref)) expect(builtinTask(ref.success)).toMatchObject({ name, seed: 4 })
    }
  })
  it("constructors reject crossed knobs given unchecked", () => {
    expect(() => arith({ minSteps: 3, maxSteps: 2 })).toThrow(RangeError)
    expect(() => sort({ minLength: 3, maxLength: 2 })).toThrow(RangeError)
    expect(() => reverse({ minLength: 3, maxLength: 2 })).toThrow(RangeError)
    expect(() => count({ minLength: 3, maxLength: 2 })).toThrow(RangeError)
    expect(() => lookup({ minPairs: 3, maxPairs: 2 })).toThrow(RangeError)
  })
})

describe("knobs", () => {
  it("an explicit undefined keeps the default, and op order does not matter", () => {
    expect(arith({ digits: undefined }).knobs).toEqual(arith().knobs)
    expect(arith({ ops: ["*", "+"] }).take("train", 20)).toEqual(arith({ ops: ["+", "*"] }).take("train", 20))
    expect(program({ ops: ["sq", "+"] }).knobs.ops).toEqual(["+", "sq"])
  })
})
