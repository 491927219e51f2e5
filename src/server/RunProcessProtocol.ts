/**
 * The channel between the daemon and a run's own process (ProcessRunExecutor.ts and
 * RunProcess.ts): Node's IPC channel, every message encoded with these schemas on one side and
 * decoded on the other. The daemon sends one `Start`; the run sends its updates as they happen
 * and, when it fails, its error before it exits. Stopping and killing are signals (SIGTERM,
 * SIGKILL), as for `simmer run`.
 */
import { Schema } from "effect"
import { RunUpdate } from "../pipeline/RunUpdate.ts"

/** What the run's process needs beyond its folder: the daemon's settings for this run. */
export const StartRun = Schema.TaggedStruct("Start", {
  id: Schema.String,
  dir: Schema.String,
  /** The tfjs backend the daemon runs on (the run's plan may name its own). */
  backend: Schema.String,
  /** Gradient worker threads (the daemon's --workers). */
  workers: Schema.Int,
  /** The run's share of the daemon's memory budget: its own budget. */
  memoryBytes: Schema.Number,
  /** Why this process continues a run whose previous process died, logged as an `interrupted` event before the run goes on. */
  restartNote: Schema.optionalKey(Schema.String),
  /** On a cluster runner: the fencing token every write of the run is checked against, and where the fence is kept. */
  fence: Schema.optionalKey(Schema.Struct({
    url: Schema.String,
    run: Schema.String,
    epoch: Schema.Int,
    holder: Schema.String
  }))
})
export type StartRun = typeof StartRun.Type

/** The environment variable that carries a run process's `Start`. */
export const startVariable = "SIMMER_RUN_START"

export const StartRunJson = Schema.fromJsonString(StartRun)

export const FromRunProcess = Schema.Union([
  /** The process handles SIGTERM from now on (a stop asked earlier is sent when this comes). */
  Schema.TaggedStruct("Ready", {}),
  Schema.TaggedStruct("Update", { update: RunUpdate }),
  /** The run failed with this message (it exits with code 4 next). */
  Schema.TaggedStruct("Failed", { message: Schema.String })
])
export type FromRunProcess = typeof FromRunProcess.Type
