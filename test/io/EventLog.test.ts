/**
 * events.ndjson through its one reader: a round trip through the JSON codec (NaN and ±Infinity
 * losses included), the file and line of a bad line, a torn last line dropped, old null losses
 * read as NaN, and a missing log (an error, or no events for a run that has not logged yet).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventLine, readEvents, readEventsIfAny } from "../../src/io/EventLog.ts"
import type { RunEvent } from "../../src/io/RunEvent.ts"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-eventlog-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const event = (seq: number, extra: Partial<RunEvent> = {}): RunEvent => ({
  seq,
  time: `2026-12-07T00:00:0${seq}Z`,
  strategy: "ptl",
  iteration: seq,
  attempt: 0,
  phase: "evaluated",
  parameters: { total: 1000 - seq, nonEmbedding: 800 - seq },
  ...extra
})

const tuned = event(1, { phase: "tuned", tune: { steps: 3, tokens: 96, losses: [2.5, Number.POSITIVE_INFINITY, Number.NaN] } })

const logFile = (text: string) =>
  Effect.gen(function*() {
    const path = join(yield* tempDir, "events.ndjson")
    yield* Effect.promise(() => writeFile(path, text))
    return path
  })

describe("readEvents", () => {
  it.effect("reads back what eventLine wrote, NaN and infinite losses included", () =>
    Effect.gen(function*() {
      const events = [event(0), tuned, event(2)]
      const read = yield* readEvents(yield* logFile(events.map(eventLine).join("") + "\n"))
      assert.strictEqual(read.length, 3)
      assert.deepStrictEqual(read[0], events[0])
      assert.strictEqual(read[1].tune!.losses[1], Number.POSITIVE_INFINITY)
      assert.isNaN(read[1].tune!.losses[2])
    }))

  it.effect("names the file and line of a line that is not JSON or not a RunEvent", () =>
    Effect.gen(function*() {
      const path = yield* logFile(`${eventLine(event(0))}\n{"seq": 1, "time": \n${eventLine(event(2))}`)
      const error = yield* Effect.flip(readEvents(path))
      assert.strictEqual(error._tag, "InvalidEventLog")
      assert.strictEqual(error._tag === "InvalidEventLog" && error.line, 3)
      assert.include(error.message, `${path}, line 3: not valid JSON`)

      yield* Effect.promise(() => writeFile(path, `${eventLine(event(0))}${eventLine(event(1)).replace('"evaluated"', '"boiled"')}`))
      const invalid = yield* Effect.flip(readEvents(path))
      assert.strictEqual(invalid._tag === "InvalidEventLog" && invalid.line, 2)
      assert.include(invalid.message, "line 2: not a run event")
      assert.include(invalid.message, "phase")
    }))

  it.effect("drops a torn last line (a kill during an append), but not a bad line before it", () =>
    Effect.gen(function*() {
      const path = yield* logFile(`${eventLine(event(0))}{"seq": 1, "ti`)
      assert.deepStrictEqual(yield* readEvents(path), [event(0)])
      yield* Effect.promise(() => writeFile(path, `{"seq": 0, "ti\n${eventLine(event(1))}`))
      assert.strictEqual((yield* Effect.flip(readEvents(path)))._tag, "InvalidEventLog")
    }))

  it.effect("reads null losses (JSON.stringify of NaN) as NaN", () =>
    Effect.gen(function*() {
      const [read] = yield* readEvents(yield* logFile(`${JSON.stringify({ ...tuned, tune: { ...tuned.tune, losses: [null] } })}\n`))
      assert.isNaN(read.tune!.losses[0])
    }))

  it.effect("a missing log is a FileSystemError naming it; readEventsIfAny reads it as no events", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "nope", "events.ndjson")
      const error = yield* Effect.flip(readEvents(path))
      assert.strictEqual(error._tag, "FileSystemError")
      assert.include(error.message, path)
      assert.include(error.message, "does not exist")
      assert.deepStrictEqual(yield* readEventsIfAny(path), [])
    }))
})
