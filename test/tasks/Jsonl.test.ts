import { assert, describe, it } from "@effect/vitest"
import { Effect, Result, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { loadJsonl, readJsonl, readJsonlLines, toExample } from "../../src/tasks/Jsonl.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "simmer-jsonl-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

let fileCount = 0
const write = (content: string) => {
  const file = path.join(dir, `data-${fileCount++}.jsonl`)
  fs.writeFileSync(file, content)
  return file
}
const lines = (...values: Array<unknown>) => values.map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join("\n") + "\n"

describe("loadJsonl", () => {
  it.effect("reads GSM8K question / answer lines", () =>
    Effect.gen(function*() {
      const file = write(lines(
        { question: "Ann has 3 apples and buys 4. How many?", answer: "3+4=<<3+4=7>>7\n#### 7" },
        { question: "Big?", answer: "It is 1,000 times 2.\n#### 2,000", id: "extra keys are ignored" }
      ))
      const loaded = yield* loadJsonl(file)
      assert.strictEqual(loaded.format, "question-answer")
      assert.deepStrictEqual(loaded.records.map((r) => r.line), [1, 2])
      assert.deepStrictEqual(toExample(loaded.records[0].record), {
        prompt: "Ann has 3 apples and buys 4. How many?\n",
        completion: "3+4=<<3+4=7>>7\n#### 7",
        answer: "7"
      })
      assert.strictEqual(toExample(loaded.records[1].record).answer, "2000")
      assert.strictEqual(loaded.skipped.length, 0)
    }))

  it.effect("reads prompt / completion lines", () =>
    Effect.gen(function*() {
      const loaded = yield* loadJsonl(write(lines({ prompt: "2+2=", completion: "4" }, { prompt: "", completion: " hi " })))
      assert.strictEqual(loaded.format, "prompt-completion")
      assert.deepStrictEqual(toExample(loaded.records[0].record), { prompt: "2+2=", completion: "4", answer: "4" })
      assert.strictEqual(toExample(loaded.records[1].record).answer, "hi")
    }))

  it.effect("reads text lines, ignoring empty lines, CRLF and a byte-order mark", () =>
    Effect.gen(function*() {
      const file = write("\uFEFF{\"text\":\"one\"}\r\n\r\n   \n{\"text\":\"two\"}\r\n{\"text\":\"three\"}")
      const loaded = yield* loadJsonl(file)
      assert.strictEqual(loaded.format, "text")
      assert.deepStrictEqual(loaded.records.map((r) => [r.line, toExample(r.record).completion]), [
        [1, "one"],
        [4, "two"],
        [5, "three"]
      ])
    }))

  const badLine = (name: string, line: string, fragment: string) =>
    it.effect(`a line with ${name} is an InvalidDatasetLine naming file and line`, () =>
      Effect.gen(function*() {
        const file = write(lines({ text: "fine" }, "", line, { text: "also fine" }))
        const error = yield* Effect.flip(loadJsonl(file))
        assert.strictEqual(error._tag, "InvalidDatasetLine")
        if (error._tag !== "InvalidDatasetLine") return
        assert.strictEqual(error.file, file)
        assert.strictEqual(error.line, 3)
        assert.include(error.message, file)
        assert.include(error.message, "line 3")
        // The flag a user can pass (issue 14.15: it said "pass skipInvalid").
        assert.include(error.message, "--skip-invalid")
        assert.include(error.issue, fragment)
      }))

  badLine("bad JSON", "{\"text\": \"unterminated", "not valid JSON")
  badLine("a non-object", "[1, 2]", "expected a JSON object, got an array")
  badLine("no known fields", "{\"body\": \"hello\"}", "no \"question\", \"prompt\" or \"text\" key")
  badLine("a wrong type", "{\"text\": 42}", "Expected string")
  badLine("an empty text", "{\"text\": \"\"}", "text")
  badLine("a different shape than line 1", "{\"prompt\": \"a\", \"completion\": \"b\"}", "line 1 is {\"text\"}")

  it.effect("a GSM8K answer without #### or with a wrongly typed field is rejected with its line", () =>
    Effect.gen(function*() {
      const noFinal = write(lines({ question: "q", answer: "a\n#### 1" }, { question: "q", answer: "just 5" }))
      const error = yield* Effect.flip(loadJsonl(noFinal))
      assert.strictEqual(error._tag, "InvalidDatasetLine")
      if (error._tag === "InvalidDatasetLine") {
        assert.strictEqual(error.line, 2)
        assert.include(error.issue, "####")
      }
      const wrongType = write(lines({ question: "q", answer: 5 }))
      const error2 = yield* Effect.flip(loadJsonl(wrongType))
      assert.strictEqual(error2._tag, "InvalidDatasetLine")
      if (error2._tag === "InvalidDatasetLine") {
        assert.strictEqual(error2.line, 1)
        assert.include(error2.issue, "answer")
      }
      const missing = write(lines({ prompt: "p" }))
      const error3 = yield* Effect.flip(loadJsonl(missing))
      assert.include(error3._tag === "InvalidDatasetLine" ? error3.issue : "", "completion")
    }))

  it.effect("skipInvalid skips and counts bad lines", () =>
    Effect.gen(function*() {
      const file = write(lines(
        { question: "q1", answer: "#### 1" },
        "not json",
        { question: "q2", answer: 2 },
        "",
        { text: "other shape" },
        { question: "q3", answer: "#### 3" }
      ))
      const loaded = yield* loadJsonl(file, { skipInvalid: true })
      assert.deepStrictEqual(loaded.records.map((r) => r.line), [1, 6])
      assert.deepStrictEqual(loaded.skipped.map((e) => e.line), [2, 3, 5])
    }))

  it.effect("a missing file is a DatasetFileNotFound", () =>
    Effect.gen(function*() {
      const file = path.join(dir, "nope.jsonl")
      const error = yield* Effect.flip(loadJsonl(file))
      assert.strictEqual(error._tag, "DatasetFileNotFound")
      assert.include(error.message, file)
    }))

  it.effect("a directory is a DatasetReadError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(loadJsonl(dir))
      assert.strictEqual(error._tag, "DatasetReadError")
    }))

  it.effect("a file with no records is an EmptyDataset", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* Effect.flip(loadJsonl(write("\n\n")))) ._tag, "EmptyDataset")
      const allBad = yield* Effect.flip(loadJsonl(write(lines("x", "y")), { skipInvalid: true }))
      assert.strictEqual(allBad._tag, "EmptyDataset")
      assert.include(allBad.message, "2")
    }))
})

describe("readJsonl", () => {
  it.effect("streams records and stops at the first bad line", () =>
    Effect.gen(function*() {
      const file = write(lines({ text: "a" }, { text: "b" }, "oops", { text: "c" }))
      const seen: Array<number> = []
      const error = yield* readJsonl(file).pipe(
        Stream.runForEach((r) => Effect.sync(() => seen.push(r.line))),
        Effect.flip
      )
      assert.deepStrictEqual(seen, [1, 2])
      assert.strictEqual(error._tag, "InvalidDatasetLine")
      const skipping = yield* Stream.runCollect(readJsonl(file, { skipInvalid: true }))
      assert.deepStrictEqual(skipping.map((r) => r.line), [1, 2, 4])
    }))

  it.effect("readJsonlLines reports every line's outcome, and a consumer can stop early", () =>
    Effect.gen(function*() {
      const big = write(Array.from({ length: 5000 }, (_, i) => JSON.stringify({ text: `line ${i}` })).join("\n"))
      const first = yield* Stream.runCollect(readJsonlLines(big).pipe(Stream.take(3)))
      assert.deepStrictEqual(first.map((r) => Result.isSuccess(r) && r.success.line), [1, 2, 3])
      const count = yield* Stream.runCount(readJsonlLines(big))
      assert.strictEqual(count, 5000)
    }))
})
