/**
 * events.ndjson, the run's history: one RunEvent per line in the JSON form of its Schema
 * (NaN and ±Infinity as strings, since JSON has no such numbers). The store appends to it and
 * the report, resume, the daemon and the cluster read it, all through this one reader.
 *
 * A last line without its line end is what a kill -9 during an append leaves; it is dropped
 * (its event was never acknowledged). Any other bad line is an error naming file and line.
 */
import { readFile } from "node:fs/promises"
import { Effect, Result, Schema } from "effect"
import { describeCause, errnoCode, FileSystemError, listSome, schemaProblems } from "./Errors.ts"
import { RunEvent } from "./RunEvent.ts"

export class InvalidEventLog extends Schema.TaggedError<InvalidEventLog>()("InvalidEventLog", {
  path: Schema.String,
  line: Schema.Int,
  message: Schema.String
}) {}

const codec = Schema.toCodecJson(RunEvent)
const encode = Schema.encodeSync(codec)
const decode = Schema.decodeUnknownResult(codec)

/** One line of events.ndjson, with its line end. */
export const eventLine = (event: RunEvent): string => `${JSON.stringify(encode(event))}\n`

/**
 * Older logs (and hand-made ones) may carry a loss as null, which is what JSON.stringify makes
 * of NaN: read it as NaN rather than rejecting the log.
 */
const nullLossesAsNaN = (value: unknown): unknown => {
  const tune = (value as { tune?: { losses?: unknown } } | null)?.tune
  if (typeof tune !== "object" || tune === null || !Array.isArray(tune.losses) || !tune.losses.includes(null)) return value
  return { ...(value as object), tune: { ...tune, losses: tune.losses.map((l: unknown) => (l === null ? "NaN" : l)) } }
}

export const parseEventLog = (path: string, text: string): Effect.Effect<Array<RunEvent>, InvalidEventLog> =>
  Effect.suspend(() => {
    const lines = text.replace(/^\uFEFF/, "").split("\n")
    const events: Array<RunEvent> = []
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].replace(/\r$/, "")
      if (line.trim() === "") continue
      const torn = i === lines.length - 1 // no line end after it
      const bad = (problem: string) =>
        Effect.fail(new InvalidEventLog({ path, line: i + 1, message: `${path}, line ${i + 1}: ${problem}.` }))
      let value: unknown
      try {
        value = JSON.parse(line)
      } catch (cause) {
        if (torn) break
        return bad(`not valid JSON (${(cause as Error).message})`)
      }
      const decoded = decode(nullLossesAsNaN(value), { errors: "all" })
      if (Result.isFailure(decoded)) {
        if (torn) break
        return bad(`not a run event: ${listSome(schemaProblems(decoded.failure), 6)}`)
      }
      events.push(decoded.success)
    }
    return Effect.succeed(events)
  })

/** The text of a log, or undefined when the file does not exist. */
const readLogText = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8").catch((cause) => (errnoCode(cause) === "ENOENT" ? undefined : Promise.reject(cause))),
    catch: (cause) => new FileSystemError({ path, message: `Cannot read ${path}: ${describeCause(cause)}.` })
  })

/** Every event of an events.ndjson file, in file order; a missing file is an error naming it. */
export const readEvents = Effect.fn("EventLog.read")(function*(
  path: string
): Effect.fn.Return<Array<RunEvent>, InvalidEventLog | FileSystemError> {
  const text = yield* readLogText(path)
  if (text === undefined) {
    return yield* new FileSystemError({
      path,
      message: `${path} does not exist: a run folder holds its event log in events.ndjson.`
    })
  }
  return yield* parseEventLog(path, text)
})

/** Every event of an events.ndjson file, or none when a run has not logged one yet. */
export const readEventsIfAny = Effect.fn("EventLog.readIfAny")(function*(
  path: string
): Effect.fn.Return<Array<RunEvent>, InvalidEventLog | FileSystemError> {
  const text = yield* readLogText(path)
  return text === undefined ? [] : yield* parseEventLog(path, text)
})
