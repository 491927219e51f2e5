/**
 * run.json: what a run records about itself besides its plan — the resolved model path (what
 * resume needs), when it was created, which simmer made it and on which compute backend it ran
 * (what a report shows, so two runs can be told apart). Fields added later are optional, so
 * older run folders still read.
 */
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Schema } from "effect"
import packageJson from "../../package.json" with { type: "json" }
import { HubPin } from "../hub/HubPin.ts"
import { writeFileAtomically } from "./AtomicWrite.ts"
import { describeCause, type FileSystemError } from "./Errors.ts"

/** This simmer's version (package.json), recorded in run folders and shown by `--version`. */
export const simmerVersion: string = packageJson.version

export const runInfoFileName = "run.json"

export const RunInfo = Schema.Struct({
  modelPath: Schema.String,
  createdAt: Schema.String,
  /** The folder the plan's relative paths are read from (the plan's own folder). */
  planFolder: Schema.optionalKey(Schema.String),
  simmerVersion: Schema.optionalKey(Schema.String),
  /** The compute backend the run last ran on, as Compute describes it. */
  backend: Schema.optionalKey(Schema.String),
  /** The engine its evaluation last decoded with (`--inference`: tfjs or ort). */
  inference: Schema.optionalKey(Schema.String),
  /** The commit each Hub id of the plan was read at (see pipeline/PlanHubRefs.ts). */
  hub: Schema.optionalKey(Schema.Array(HubPin))
})
export type RunInfo = typeof RunInfo.Type

/** A run folder whose job cannot be read back (run.json, or its plan); `message` is one line saying why. */
export class RunFolderUnreadable extends Schema.TaggedError<RunFolderUnreadable>()("RunFolderUnreadable", {
  dir: Schema.String,
  message: Schema.String
}) {}

const decodeRunInfo = Schema.decodeUnknownEffect(Schema.fromJsonString(RunInfo))

/** run.json of a run folder. */
export const readRunInfo = (dir: string): Effect.Effect<RunInfo, RunFolderUnreadable> => {
  const path = join(dir, runInfoFileName)
  return Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) => new RunFolderUnreadable({ dir, message: `cannot read ${path}: ${describeCause(cause)}` })
  }).pipe(
    Effect.flatMap((text) =>
      decodeRunInfo(text).pipe(Effect.mapError(() => new RunFolderUnreadable({ dir, message: `${path} is not a valid run.json` })))
    )
  )
}

/** Writes run.json atomically. */
export const writeRunInfo = (dir: string, info: RunInfo): Effect.Effect<void, FileSystemError> =>
  writeFileAtomically(join(dir, runInfoFileName), JSON.stringify(info, null, 2) + "\n")

/** Adds facts learnt once the run is going (the backend) to run.json; a run folder without a readable one is left alone. */
export const recordInRunInfo = (dir: string, facts: Partial<RunInfo>): Effect.Effect<void, FileSystemError> =>
  readRunInfo(dir).pipe(
    Effect.matchEffect({ onFailure: () => Effect.void, onSuccess: (info) => writeRunInfo(dir, { ...info, ...facts }) })
  )
