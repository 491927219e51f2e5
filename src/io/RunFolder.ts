/**
 * The small JSON files of a run folder and how they are read and written:
 *
 *   plan.yaml      the plan as given
 *   run.json       what a run needs besides its plan to be continued from anywhere
 *   accepted.json  each strategy's last accepted stage
 *   result.json    each finished (or failed) strategy's final checkpoint, size and metrics
 *
 * Each is decoded with its Schema; a damaged one is a CorruptRunFile naming it, never silently
 * read as empty. A run folder is created whole (plan and run.json together) or not at all, and
 * opened one way (`openRunFolder`), so each mistake — a folder that does not exist, a file, a
 * folder that is not a run, a run missing what a command needs — has one message.
 */
import { readdir, readFile, stat, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Result, Schema } from "effect"
import { pathExists, writeFileAtomically, writeFolderAtomically } from "./AtomicWrite.ts"
import { describeCause, errnoCode, type FileSystemError, fsError, listSome, schemaProblems } from "./Errors.ts"
import { takeProcessLock } from "./ProcessLock.ts"
import { DatasetScore, Strategy } from "./RunEvent.ts"
import { type RunInfo, runInfoFileName } from "./RunInfo.ts"

export const planFileName = "plan.yaml"
export const acceptedFileName = "accepted.json"
export const resultFileName = "result.json"
export const eventsFileName = "events.ndjson"

export class CorruptRunFile extends Schema.TaggedError<CorruptRunFile>()("CorruptRunFile", {
  path: Schema.String,
  message: Schema.String
}) {}

/** A folder that is not a run folder, or one that cannot be created. */
export class RunFolderError extends Schema.TaggedError<RunFolderError>()("RunFolderError", {
  path: Schema.String,
  message: Schema.String
}) {}

/** Another live process writes the run folder (or its lock cannot be taken). */
export class RunLocked extends Schema.TaggedError<RunLocked>()("RunLocked", {
  path: Schema.String,
  message: Schema.String
}) {}

/** Takes run folder `dir`'s lock for this process until the scope closes: one writer per folder. */
export const lockRunFolder = (dir: string) =>
  takeProcessLock(join(dir, "lock"), {
    held: (path, holder) =>
      new RunLocked({
        path,
        message: `${dir} is in use by another simmer process (${holder}). Wait for it to finish, ` +
          `or stop it (SIGTERM stops it resumably); a lock left by a process that died is taken over by itself.`
      }),
    failed: (path, cause) => new RunLocked({ path, message: `Cannot lock the run folder ${dir}: ${cause}.` })
  })

const Pointer = Schema.Struct({ stage: Schema.String, iteration: Schema.Int, strategy: Strategy })

/** accepted.json: one pointer per strategy (simmer 0.1 wrote a single pointer, read as its strategy's). */
export const AcceptedFile = Schema.Union([Schema.Record(Schema.String, Pointer), Pointer])

export const StrategyResult = Schema.Struct({
  /** The final checkpoint, relative to the run folder. */
  checkpoint: Schema.String,
  iteration: Schema.Int,
  parameters: Schema.Struct({ total: Schema.Int, nonEmbedding: Schema.Int }),
  /** Non-embedding parameters kept, as a fraction of the original's. */
  share: Schema.Number,
  targetReached: Schema.Boolean,
  metrics: Schema.Record(Schema.String, DatasetScore),
  finishedAt: Schema.String,
  /** `failed`: the strategy stopped on `error`, and `checkpoint` is its last accepted one (absent: finished). */
  status: Schema.optionalKey(Schema.Literals(["finished", "failed"])),
  error: Schema.optionalKey(Schema.String)
})

export const RunResult = Schema.Struct({
  strategies: Schema.Record(Schema.String, StrategyResult)
})
export type RunResult = typeof RunResult.Type

/** Reads and decodes a JSON file of the run folder; undefined when it does not exist. */
export const readRunFile = <S extends Schema.Top>(path: string, schema: S) =>
  Effect.gen(function*() {
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8").catch((e) => (errnoCode(e) === "ENOENT" ? undefined : Promise.reject(e))),
      catch: fsError(path, "read")
    })
    if (text === undefined) return undefined
    const decoded = Schema.decodeUnknownResult(Schema.fromJsonString(schema) as unknown as Schema.Codec<S["Type"], string>)(text, { errors: "all" })
    if (Result.isFailure(decoded)) {
      return yield* new CorruptRunFile({
        path,
        message: `${path} is damaged (${listSome(schemaProblems(decoded.failure), 4)}); it was not written by simmer, ` +
          "or was cut short or edited. Restore it from a backup, or remove it to let simmer rebuild what it can."
      })
    }
    return decoded.success as S["Type"]
  })

export const writeRunFile = (path: string, value: unknown): Effect.Effect<void, FileSystemError> =>
  writeFileAtomically(path, JSON.stringify(value, null, 2) + "\n")

/**
 * Creates run folder `dir` holding the plan text and run.json, atomically: either all of it
 * exists afterwards or nothing does. An existing folder is an error unless `replace`; a folder
 * being replaced is locked first, so one that a live process writes is refused (RunLocked).
 */
export const createRunFolder = (dir: string, planText: string, info: RunInfo, options: { readonly replace?: boolean } = {}) =>
  Effect.gen(function*() {
    const exists = yield* pathExists(dir)
    if (!options.replace && exists) {
      return yield* new RunFolderError({
        path: dir,
        message: `${dir} already exists; continue it with \`simmer resume ${dir}\`, choose another --out, or start over with --replace.`
      })
    }
    if (exists) yield* lockRunFolder(dir)
    yield* writeFolderAtomically(dir, (temp) =>
      Effect.tryPromise({
        try: async () => {
          await writeFile(join(temp, planFileName), planText)
          await writeFile(join(temp, runInfoFileName), JSON.stringify(info, null, 2) + "\n")
        },
        catch: (cause) => new RunFolderError({ path: dir, message: `Cannot create the run folder ${dir}: ${describeCause(cause)}.` })
      }), { onExisting: options.replace ? "replace" : "fail" }).pipe(
        Effect.catchTag("TargetExists", (e) => Effect.fail(new RunFolderError({ path: dir, message: e.message })))
      )
  }).pipe(Effect.scoped)

/** What `simmer run` writes into a run folder before anything else. */
const runFiles = [planFileName, "run.json", eventsFileName] as const
export type RunFile = (typeof runFiles)[number]

export class NotARunFolder extends Schema.TaggedError<NotARunFolder>()("NotARunFolder", {
  path: Schema.String,
  message: Schema.String
}) {}

const why: Record<RunFile, string> = {
  "plan.yaml": "the run folder is incomplete",
  "run.json": "the run folder is incomplete",
  "events.ndjson": "the run has not logged anything yet"
}

/** Checks that `dir` is a run folder holding the files `needs`; fails with one NotARunFolder message per kind of mistake. */
export const openRunFolder = (dir: string, needs: ReadonlyArray<RunFile>): Effect.Effect<void, NotARunFolder> =>
  Effect.gen(function*() {
    const fail = (message: string) => Effect.fail(new NotARunFolder({ path: dir, message }))
    const entries = yield* Effect.tryPromise({
      try: async () => ((await stat(dir)).isDirectory() ? await readdir(dir) : undefined),
      catch: (cause) => cause
    }).pipe(Effect.catch((cause) =>
      fail(errnoCode(cause) === "ENOENT" ? `The run folder ${dir} does not exist.` : `Cannot read the run folder ${dir}: ${describeCause(cause)}.`)
    ))
    if (entries === undefined) return yield* fail(`${dir} is a file, not a run folder.`)
    if (!runFiles.some((f) => entries.includes(f))) {
      return yield* fail(
        `${dir} is not a run folder: it has no ${runFiles.join(", ")} (\`simmer run\` and \`simmer demo\` create run folders).`
      )
    }
    const missing = needs.filter((f) => !entries.includes(f))
    if (missing.length > 0) return yield* fail(`${dir} has no ${missing.join(" or ")}: ${why[missing[0]]}.`)
  })
