/**
 * Reading run folders for the report and writing it: a run's events (see EventLog), plan.yaml
 * and run.json, named after its folder; the page for the run and the runs compared with it;
 * `<run>/report.html` (or the page asked for) replaced atomically.
 */
import { readFile } from "node:fs/promises"
import { basename, join, resolve } from "node:path"
import { Effect, Option, Schema } from "effect"
import { writeFileAtomically } from "../io/AtomicWrite.ts"
import { describeCause, errnoCode, type FileSystemError } from "../io/Errors.ts"
import { readEvents } from "../io/EventLog.ts"
import { eventsFileName, openRunFolder, planFileName } from "../io/RunFolder.ts"
import { readRunInfo } from "../io/RunInfo.ts"
import { comparabilityWarnings } from "./Comparable.ts"
import { renderReport } from "./ReportPage.ts"
import type { RunInput } from "./ReportModel.ts"

/** A run folder or its events.ndjson cannot be read, or a line of the log is not a RunEvent. */
export class ReportError extends Schema.TaggedError<ReportError>()("ReportError", {
  path: Schema.String,
  /** 1-based line of events.ndjson, for a bad line. */
  line: Schema.optionalKey(Schema.Int),
  message: Schema.String
}) {}

const readOptional = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8").catch((cause) => (errnoCode(cause) === "ENOENT" ? undefined : Promise.reject(cause))),
    catch: (cause) => new ReportError({ path, message: `Cannot read ${path}: ${describeCause(cause)}.` })
  })

/** A run folder's events, plan and run.json, named after the folder. */
export const readRun = Effect.fn("Report.readRun")(function*(folder: string): Effect.fn.Return<RunInput, ReportError> {
  yield* openRunFolder(folder, [eventsFileName]).pipe(Effect.mapError((e) => new ReportError({ path: e.path, message: e.message })))
  const events = yield* readEvents(join(folder, eventsFileName)).pipe(
    Effect.mapError((e) => new ReportError({ path: e.path, ...(e._tag === "InvalidEventLog" ? { line: e.line } : {}), message: e.message }))
  )
  const plan = yield* readOptional(join(folder, planFileName))
  // run.json is optional here: a report of a folder without one shows less.
  const info = yield* readRunInfo(folder).pipe(Effect.option)
  return { name: basename(resolve(folder)), events, plan, folder: resolve(folder), ...(Option.isSome(info) ? { info: info.value } : {}) }
})

export interface WriteReportOptions {
  /** The page to write; default `<runFolder>/report.html`. */
  readonly output?: string
  /** simmer's version, shown as the page's writer. */
  readonly version?: string
  /** What the page calls the runs, in order (a sweep's `scorer=wanda target=0.6`); default: their folders' names. */
  readonly names?: ReadonlyArray<string>
}

/** The report of the run and the runs compared with it, as a page, writing nothing (the daemon's GET). */
export const reportPage = Effect.fn("Report.reportPage")(function*(
  runFolder: string,
  compare: ReadonlyArray<string> = [],
  options: Pick<WriteReportOptions, "version" | "names"> = {}
): Effect.fn.Return<{ readonly html: string; readonly runs: ReadonlyArray<RunInput>; readonly warnings: ReadonlyArray<string> }, ReportError> {
  const read = yield* Effect.forEach([runFolder, ...compare], readRun)
  const runs = read.map((run, i) => ({ ...run, name: options.names?.[i] ?? run.name }))
  const warnings = comparabilityWarnings(runs)
  const generated = options.version !== undefined ? { time: new Date().toISOString(), version: options.version } : undefined
  return { html: renderReport(runs, { warnings, ...(generated !== undefined ? { generated } : {}) }), runs, warnings }
})

/**
 * Rebuilds the report (atomically) from the run and the runs compared with it; returns its path,
 * the runs read and what makes them hard to compare.
 */
export const buildReport = Effect.fn("Report.buildReport")(function*(
  runFolder: string,
  compare: ReadonlyArray<string> = [],
  options: WriteReportOptions = {}
): Effect.fn.Return<{ readonly path: string; readonly runs: ReadonlyArray<RunInput>; readonly warnings: ReadonlyArray<string> }, ReportError | FileSystemError> {
  const { html, runs, warnings } = yield* reportPage(runFolder, compare, options)
  const path = options.output ?? join(runFolder, "report.html")
  yield* writeFileAtomically(path, html)
  return { path, runs, warnings }
})

/** Rebuilds `<runFolder>/report.html` (atomically) from the run and the runs compared with it; returns its path. */
export const writeReport = (runFolder: string, compare: ReadonlyArray<string> = [], options: WriteReportOptions = {}) =>
  Effect.map(buildReport(runFolder, compare, options), (built) => built.path)
