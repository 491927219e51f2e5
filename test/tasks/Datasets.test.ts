import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Result, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { DatasetRef, Datasets } from "../../src/services/Datasets.ts"
import { arith } from "../../src/tasks/Arith.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "simmer-datasets-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const gsm8k = path.join(dir, "gsm8k.jsonl")
fs.writeFileSync(
  gsm8k,
  Array.from({ length: 400 }, (_, i) => JSON.stringify({ question: `What is ${i} plus ${i}?`, answer: `${i}+${i}=${2 * i}\n#### ${2 * i}` }))
    .join("\n")
)
const messy = path.join(dir, "messy.jsonl")
fs.writeFileSync(messy, ["{\"text\":\"a\"}", "{bad", "{\"text\":\"b\"}", "{\"text\":5}"].join("\n"))

layer(Datasets.layer)("Datasets", (it) => {
  it.effect("serves built-in tasks exactly as the task generates them", () =>
    Effect.gen(function*() {
      const datasets = yield* Datasets
      const ref = { task: "arith", digits: 2, seed: 4 } as const
      const dataset = yield* datasets.open(ref)
      assert.strictEqual(dataset.name, "arith")
      assert.strictEqual(dataset.format, "question-answer")
      assert.strictEqual(dataset.size("train"), undefined)
      const task = arith({ digits: 2 }, 4)
      assert.deepStrictEqual(yield* datasets.take(ref, "test", 5), task.take("test", 5))
      assert.deepStrictEqual(yield* datasets.chunk(ref, 2, 8), task.chunk(2, 8))
      const streamed = yield* Stream.runCollect(dataset.stream("calibration").pipe(Stream.take(4)))
      assert.deepStrictEqual(streamed, task.take("calibration", 4))
      const e = streamed[0]
      assert.isTrue(dataset.grader!.grade(e, e.completion))
    }))

  it.effect("general has no grader; program grades by execution", () =>
    Effect.gen(function*() {
      const datasets = yield* Datasets
      assert.isUndefined((yield* datasets.open({ task: "general" })).grader)
      const program = yield* datasets.open({ task: "program", maxOps: 2 })
      const [e] = program.take("test", 1)
      assert.isTrue(program.grader!.grade(e, e.completion))
      assert.isFalse(program.grader!.grade(e, "1[]"))
    }))

  it.effect("divides a file into disjoint splits by prompt hash", () =>
    Effect.gen(function*() {
      const datasets = yield* Datasets
      const dataset = yield* datasets.open({ file: gsm8k })
      const sizes = (["train", "calibration", "test"] as const).map((s) => dataset.size(s)!)
      assert.strictEqual(sizes[0] + sizes[1] + sizes[2], 400)
      assert.isTrue(sizes[0] > 250 && sizes[1] > 10 && sizes[2] > 10)
      const train = new Set(dataset.take("train", 1000).map((e) => e.prompt))
      for (const e of dataset.take("test", 1000)) assert.isFalse(train.has(e.prompt))
      const [first] = dataset.take("test", 1)
      assert.isTrue(dataset.grader!.grade(first, `#### ${first.answer}`))
      assert.isFalse(dataset.grader!.grade(first, `#### ${Number(first.answer) + 1}`))
      // chunks cycle through the train split
      const chunk = dataset.chunk(0, sizes[0] + 3)
      assert.deepStrictEqual(chunk.slice(sizes[0]), chunk.slice(0, 3))
      const whole = yield* datasets.open({ file: gsm8k, splitBy: "none" })
      assert.strictEqual(whole.size("test"), 400)
    }))

  it.effect("reports bad lines as typed errors, or skips and counts them", () =>
    Effect.gen(function*() {
      const datasets = yield* Datasets
      const error = yield* Effect.flip(datasets.open({ file: messy }))
      assert.strictEqual(error._tag, "InvalidDatasetLine")
      if (error._tag === "InvalidDatasetLine") assert.strictEqual(error.line, 2)
      const dataset = yield* datasets.open({ file: messy, skipInvalid: true, splitBy: "none" })
      assert.strictEqual(dataset.skipped, 2)
      assert.deepStrictEqual(dataset.take("train", 10).map((e) => e.completion), ["a", "b"])
      assert.isUndefined(dataset.grader)
      const missing = yield* Effect.flip(datasets.take({ file: path.join(dir, "missing.jsonl") }, "test", 3))
      assert.strictEqual(missing._tag, "DatasetFileNotFound")
    }))

  it.effect("caches a file once it is read", () =>
    Effect.gen(function*() {
      const datasets = yield* Datasets
      const copy = path.join(dir, "copy.jsonl")
      fs.copyFileSync(gsm8k, copy)
      const first = yield* datasets.open({ file: copy })
      fs.rmSync(copy)
      const second = yield* datasets.open({ file: copy })
      assert.strictEqual(first, second)
    }))

  it.effect("impossible knobs are a typed error", () =>
    Effect.gen(function*() {
      const datasets = yield* Datasets
      const error = yield* Effect.flip(datasets.open({ task: "arith", minSteps: 3, maxSteps: 1 }))
      assert.strictEqual(error._tag, "InvalidTaskKnobs")
      // knobs the schema accepts but that leave no example short enough
      const tooLong = yield* Effect.flip(datasets.open({ task: "arith", digits: 6, minSteps: 8, maxSteps: 8, maxChars: 32 }))
      assert.strictEqual(tooLong._tag, "InvalidTaskKnobs")
      assert.include(tooLong.message, "maxChars")
    }))
})

describe("DatasetRef", () => {
  it("decodes built-in and file references from plain JSON", () => {
    const decode = Schema.decodeUnknownResult(DatasetRef)
    assert.isTrue(Result.isSuccess(decode({ task: "program", maxOps: 4, seed: 2 })))
    assert.isTrue(Result.isSuccess(decode({ file: "data/train.jsonl", skipInvalid: true })))
    assert.isTrue(Result.isFailure(decode({ file: "" })))
    assert.isTrue(Result.isFailure(decode({ task: "general", maxSentences: 0 })))
    assert.isTrue(Result.isFailure(decode({ file: "x.jsonl", splitBy: "random" })))
  })
})
