/**
 * User data as JSONL, one JSON object per line, in one of three shapes:
 *
 *   {"question": "...", "answer": "... #### 42"}   GSM8K: the final answer follows `####`
 *   {"prompt": "...", "completion": "..."}          graded by exact match of the completion
 *   {"text": "..."}                                 plain text, for perplexity and calibration
 *
 * Files are read as a stream of lines (node:fs + readline) and every line is decoded with the
 * `DatasetRecord` schema. Empty lines are ignored; a file holds one shape (the first record
 * fixes it). A bad line is an `InvalidDatasetLine` naming the file and line number, or, with
 * `skipInvalid`, is skipped and counted. A missing file is a `DatasetFileNotFound`.
 */
import { Effect, Result, Schema, Stream } from "effect"
import * as fs from "node:fs/promises"
import { isAbsolute, resolve } from "node:path"
import * as readline from "node:readline"
import { finalAnswer, normalizeAnswer } from "./Answer.ts"
import type { Example } from "./Task.ts"

export const QuestionAnswerRecord = Schema.Struct({
  question: Schema.NonEmptyString,
  answer: Schema.String.check(
    Schema.makeFilter((answer: string) =>
      finalAnswer(answer) !== undefined || "Expected a GSM8K answer with a final line \"#### <answer>\""
    )
  )
})

export const PromptCompletionRecord = Schema.Struct({
  prompt: Schema.String,
  completion: Schema.NonEmptyString
})

export const TextRecord = Schema.Struct({
  text: Schema.NonEmptyString
})

/** One line of a dataset file. Extra keys are ignored. */
export const DatasetRecord = Schema.Union([QuestionAnswerRecord, PromptCompletionRecord, TextRecord])
export type DatasetRecord = typeof DatasetRecord.Type

export type DatasetFormat = "question-answer" | "prompt-completion" | "text"

const formatFields: Record<DatasetFormat, string> = {
  "question-answer": "{\"question\", \"answer\"}",
  "prompt-completion": "{\"prompt\", \"completion\"}",
  text: "{\"text\"}"
}

export const formatOf = (record: DatasetRecord): DatasetFormat =>
  "question" in record ? "question-answer" : "prompt" in record ? "prompt-completion" : "text"

/**
 * A record as an `Example`. GSM8K: prompt = question + "\n", completion = the whole answer
 * (chain of thought and `####` line), answer = the final answer in normal form. Prompt /
 * completion: answer = the trimmed completion. Text: everything is completion.
 */
export const toExample = (record: DatasetRecord): Example => {
  if ("question" in record) {
    return {
      prompt: `${record.question}\n`,
      completion: record.answer,
      answer: normalizeAnswer(finalAnswer(record.answer)!)
    }
  }
  if ("prompt" in record) return { prompt: record.prompt, completion: record.completion, answer: record.completion.trim() }
  return { prompt: "", completion: record.text, answer: "" }
}

/** The text that decides a record's split when a file is divided by hashing: what is asked. */
export const splitKeyOf = (record: DatasetRecord): string =>
  "question" in record ? record.question : "prompt" in record ? record.prompt : record.text

export class DatasetFileNotFound extends Schema.TaggedError<DatasetFileNotFound>()("DatasetFileNotFound", {
  file: Schema.String
}) {
  override get message() {
    return `Dataset file ${this.file} does not exist` +
      (isAbsolute(this.file) ? "." : ` (a relative path is read from the working directory: ${resolve(this.file)}).`)
  }
}

export class DatasetReadError extends Schema.TaggedError<DatasetReadError>()("DatasetReadError", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `Could not read dataset file ${this.file}: ${this.reason}.`
  }
}

export class InvalidDatasetLine extends Schema.TaggedError<InvalidDatasetLine>()("InvalidDatasetLine", {
  file: Schema.String,
  line: Schema.Int,
  issue: Schema.String
}) {
  override get message() {
    return `${this.file}, line ${this.line}: ${this.issue}. Each line must be a JSON object with ` +
      `"question" and "answer" (GSM8K, final answer after ####), "prompt" and "completion", or "text"; ` +
      `fix the line, or skip bad lines with --skip-invalid (in a plan: skipInvalid: true next to the file).`
  }
}

export class EmptyDataset extends Schema.TaggedError<EmptyDataset>()("EmptyDataset", {
  file: Schema.String,
  skipped: Schema.Int
}) {
  override get message() {
    return `Dataset file ${this.file} holds no usable records` +
      (this.skipped > 0 ? ` (all ${this.skipped} non-empty lines were invalid and skipped).` : " (it is empty).")
  }
}

export type JsonlError = DatasetFileNotFound | DatasetReadError | InvalidDatasetLine

/** A decoded record and the (1-based) line it came from. */
export interface JsonlRecord {
  readonly line: number
  readonly record: DatasetRecord
}

const fileError = (file: string, cause: unknown): DatasetFileNotFound | DatasetReadError => {
  const code = (cause as { code?: unknown } | null)?.code
  if (code === "ENOENT") return new DatasetFileNotFound({ file })
  const reason = cause instanceof Error ? cause.message : String(cause)
  return new DatasetReadError({ file, reason })
}

/** The raw lines of a file, without line terminators ("\n" or "\r\n"); the file is closed when the stream ends. */
export const readLines = (file: string): Stream.Stream<string, DatasetFileNotFound | DatasetReadError> =>
  Stream.unwrap(Effect.gen(function*() {
    const handle = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => fs.open(file, "r"), catch: (cause) => fileError(file, cause) }),
      (handle) => Effect.promise(() => handle.close())
    )
    const input = handle.createReadStream({ encoding: "utf8", autoClose: false })
    const lines = readline.createInterface({ input, crlfDelay: Infinity })
    yield* Effect.addFinalizer(() => Effect.sync(() => lines.close()))
    return Stream.fromAsyncIterable(lines, (cause) => fileError(file, cause))
  }))

const describeIssue = (error: Schema.SchemaError): string =>
  error.message.replace(/\n\s*at /g, " at ").replace(/\n/g, "; ")

const decodeRecord = Schema.decodeUnknownResult(DatasetRecord)
const decodeMember: Record<DatasetFormat, (value: unknown) => Result.Result<unknown, Schema.SchemaError>> = {
  "question-answer": Schema.decodeUnknownResult(QuestionAnswerRecord),
  "prompt-completion": Schema.decodeUnknownResult(PromptCompletionRecord),
  text: Schema.decodeUnknownResult(TextRecord)
}

/** The shape an object that failed to decode was most likely meant to have, judged by its keys. */
const intendedFormat = (value: object): DatasetFormat | undefined =>
  "question" in value || "answer" in value
    ? "question-answer"
    : "prompt" in value || "completion" in value
    ? "prompt-completion"
    : "text" in value
    ? "text"
    : undefined

/** Decodes one non-empty line; the issue says what is wrong in one sentence. */
export const decodeLine = (text: string): Result.Result<DatasetRecord, string> => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    return Result.fail(`not valid JSON (${cause instanceof Error ? cause.message : String(cause)})`)
  }
  return decodeRecordValue(value)
}

/** Decodes one parsed record (a JSON line, a Parquet row); the issue says what is wrong in one sentence. */
export const decodeRecordValue = (value: unknown): Result.Result<DatasetRecord, string> => {
  const decoded = decodeRecord(value)
  if (Result.isSuccess(decoded)) return Result.succeed(decoded.success)
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return Result.fail(`expected a JSON object, got ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}`)
  }
  // The union's own report lists every member's complaint; report the one the line was meant to be.
  const format = intendedFormat(value)
  if (format === undefined) return Result.fail(`no "question", "prompt" or "text" key (keys: ${Object.keys(value).join(", ") || "none"})`)
  const member = decodeMember[format](value)
  return Result.fail(`not a valid ${formatFields[format]} record: ${describeIssue(Result.isFailure(member) ? member.failure : decoded.failure)}`)
}

type LineResult = Result.Result<JsonlRecord, InvalidDatasetLine>
interface FirstRecord {
  readonly format: DatasetFormat
  readonly line: number
}

/**
 * Every non-empty line of a JSONL dataset file, decoded: a record or the reason it is invalid.
 * Only failures to open or read the file end the stream.
 */
export const readJsonlLines = (
  file: string
): Stream.Stream<LineResult, DatasetFileNotFound | DatasetReadError> =>
  readLines(file).pipe(
    Stream.map((text, i) => ({ text: i === 0 ? text.replace(/^\uFEFF/, "") : text, line: i + 1 })),
    Stream.filter(({ text }) => text.trim().length > 0),
    Stream.mapAccum(
      (): FirstRecord | undefined => undefined,
      (first, { line, text }): readonly [FirstRecord | undefined, ReadonlyArray<LineResult>] => {
        const invalid = (issue: string): LineResult => Result.fail(new InvalidDatasetLine({ file, line, issue }))
        const decoded = decodeLine(text)
        if (Result.isFailure(decoded)) return [first, [invalid(decoded.failure)]]
        const format = formatOf(decoded.success)
        if (first !== undefined && first.format !== format) {
          return [first, [
            invalid(`a ${formatFields[format]} record, but line ${first.line} is ${formatFields[first.format]} and a file holds one shape`)
          ]]
        }
        return [first ?? { format, line }, [Result.succeed({ line, record: decoded.success })]]
      }
    )
  )

export interface JsonlOptions {
  /** Skip (and count) invalid lines instead of failing on the first one. */
  readonly skipInvalid?: boolean | undefined
}

/** The valid records of a JSONL dataset file, in order; fails on the first bad line unless `skipInvalid`. */
export const readJsonl = (file: string, options: JsonlOptions = {}): Stream.Stream<JsonlRecord, JsonlError> =>
  options.skipInvalid
    ? readJsonlLines(file).pipe(Stream.filterMap((result) => result))
    : readJsonlLines(file).pipe(Stream.mapEffect(Effect.fromResult))

/** A whole JSONL dataset file, validated. */
export interface JsonlFile {
  readonly file: string
  readonly format: DatasetFormat
  readonly records: ReadonlyArray<JsonlRecord>
  /** The lines skipped as invalid (always empty unless `skipInvalid`). */
  readonly skipped: ReadonlyArray<InvalidDatasetLine>
}

/** Reads a whole JSONL dataset file; a file without a single valid record is an `EmptyDataset`. */
export const loadJsonl = Effect.fn("Jsonl.loadJsonl")(function*(
  file: string,
  options: JsonlOptions = {}
): Effect.fn.Return<JsonlFile, JsonlError | EmptyDataset> {
  const records: Array<JsonlRecord> = []
  const skipped: Array<InvalidDatasetLine> = []
  yield* readJsonlLines(file).pipe(
    Stream.runForEach((result) => {
      if (Result.isSuccess(result)) {
        records.push(result.success)
        return Effect.void
      }
      if (options.skipInvalid) {
        skipped.push(result.failure)
        return Effect.void
      }
      return Effect.fail(result.failure)
    })
  )
  if (records.length === 0) return yield* new EmptyDataset({ file, skipped: skipped.length })
  return { file, format: formatOf(records[0].record), records, skipped }
})
