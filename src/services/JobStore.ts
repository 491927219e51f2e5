/**
 * JobStore: the daemon's list of runs — who submitted what, in which order and priority, and
 * where each run stands (queued, running, interrupted, cancelled, failed, finished) with a
 * summary of its progress. A run's artifacts are not here: they live in its run folder, in the
 * `simmer run` format, which is written first; a row only points at it. The store survives a
 * kill -9 (`JobStore.layerSqlite` keeps it in SQLite, JobStoreSqlite.ts) and is reconciled with
 * the folders on start.
 */
import { Context, Effect, Layer, type Option, Schema } from "effect"
import { Phase, Strategy } from "../io/RunEvent.ts"

/**
 * A run id as the server makes it: its submission time and six random hex digits, e.g.
 * `20261202-174501-a3f9c2`. The pattern admits no `/`, `.` or `..`, so an id never addresses a path.
 */
export const RunId = Schema.String.check(Schema.isPattern(/^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$/)).pipe(Schema.brand("RunId"))
export type RunId = typeof RunId.Type

export const RunStatuses = ["queued", "running", "interrupted", "cancelled", "failed", "finished"] as const
export const RunStatus = Schema.Literals(RunStatuses)
export type RunStatus = typeof RunStatus.Type

/** Statuses a run leaves only when someone asks (resume, delete). */
export const settledStatuses: ReadonlyArray<RunStatus> = ["cancelled", "failed", "finished", "interrupted"]

const Score = Schema.Struct({ accuracy: Schema.optionalKey(Schema.Number), perplexity: Schema.optionalKey(Schema.Number), examples: Schema.Int })

/** How one strategy of a run ended (its `finished` or `failed` event), as result.json has it. */
export const StrategyOutcome = Schema.Struct({
  status: Schema.Literals(["finished", "failed"]),
  /** False when it stopped short of the plan's target (every further step failed the gates) or failed. */
  targetReached: Schema.Boolean,
  /** Non-embedding parameters of its final model, as a fraction of the original's. */
  share: Schema.Number,
  metrics: Schema.Record(Schema.String, Score),
  /** Its final checkpoint (a failed strategy's last accepted one), relative to the run folder. */
  checkpoint: Schema.optionalKey(Schema.String),
  /** Why it stopped short, or the error it failed with. */
  message: Schema.optionalKey(Schema.String)
})
export type StrategyOutcome = typeof StrategyOutcome.Type

/** What the last logged event of a run says, kept with its row so lists need not read event logs. */
export const LoggedProgress = Schema.Struct({
  seq: Schema.Int,
  strategy: Strategy,
  iteration: Schema.Int,
  attempt: Schema.Int,
  phase: Phase,
  /** Non-embedding parameters left, as a fraction of the original's. */
  share: Schema.Number,
  /** The last evaluation's metrics: of the model `measuredOn` says, which may not be this state's. */
  metrics: Schema.Record(Schema.String, Score),
  /** The state `metrics` were measured on (absent in summaries of older daemons). */
  measuredOn: Schema.optionalKey(Schema.Struct({
    strategy: Strategy,
    iteration: Schema.Int,
    attempt: Schema.Int,
    share: Schema.Number
  })),
  /** Tokens tuned on so far, over every logged tuning. */
  tuningTokens: Schema.Int,
  /** The last accepted stage folder, relative to the run folder. */
  acceptedStage: Schema.optionalKey(Schema.String),
  /** Each strategy that ended, by name (ptl, one-shot, prune-only). */
  results: Schema.optionalKey(Schema.Record(Schema.String, StrategyOutcome))
})
export type LoggedProgress = typeof LoggedProgress.Type

export const RunRecord = Schema.Struct({
  id: RunId,
  name: Schema.String,
  priority: Schema.Int,
  status: RunStatus,
  /** Submission order, for ties of priority. */
  seq: Schema.Int,
  submittedAt: Schema.String,
  startedAt: Schema.optionalKey(Schema.String),
  endedAt: Schema.optionalKey(Schema.String),
  /** Why it failed, in the words of the error. */
  error: Schema.optionalKey(Schema.String),
  /** Runs stopped by a shutdown go ahead of everything else when the daemon starts again. */
  first: Schema.Boolean,
  progress: Schema.optionalKey(LoggedProgress)
})
export type RunRecord = typeof RunRecord.Type

export class JobStoreError extends Schema.TaggedError<JobStoreError>()("JobStoreError", {
  message: Schema.String
}) {}

export interface RunListQuery {
  readonly status?: RunStatus | undefined
  readonly limit: number
  readonly offset: number
}

export interface StatusChange {
  readonly status: RunStatus
  readonly startedAt?: string
  readonly endedAt?: string
  readonly error?: string
  readonly first?: boolean
}

export class JobStore extends Context.Service<JobStore, {
  /** Where the store lives, for messages. */
  readonly location: string
  readonly insert: (run: { readonly id: RunId; readonly name: string; readonly priority: number; readonly status?: RunStatus }) => Effect.Effect<RunRecord, JobStoreError>
  readonly get: (id: RunId) => Effect.Effect<Option.Option<RunRecord>, JobStoreError>
  /** Newest first. */
  readonly list: (query: RunListQuery) => Effect.Effect<{ readonly runs: ReadonlyArray<RunRecord>; readonly total: number }, JobStoreError>
  /** Every run, in submission order (for recovery). */
  readonly all: Effect.Effect<ReadonlyArray<RunRecord>, JobStoreError>
  /** The queued run to start next: runs stopped by a shutdown first, then priority, then submission order. */
  readonly nextQueued: (skip: ReadonlyArray<RunId>) => Effect.Effect<Option.Option<RunRecord>, JobStoreError>
  readonly setStatus: (id: RunId, change: StatusChange) => Effect.Effect<void, JobStoreError>
  /**
   * Moves the run from one of `from` to `change.status`; false when it was in none of them
   * (someone else moved it first), so two requests cannot both act on one run.
   */
  readonly transition: (id: RunId, from: ReadonlyArray<RunStatus>, change: StatusChange) => Effect.Effect<boolean, JobStoreError>
  readonly setProgress: (id: RunId, progress: LoggedProgress) => Effect.Effect<void, JobStoreError>
  readonly remove: (id: RunId) => Effect.Effect<void, JobStoreError>
  readonly countByStatus: Effect.Effect<Readonly<Record<RunStatus, number>>, JobStoreError>
}>()("simmer/JobStore") {
  /**
   * The store in the SQLite file `filename`, one daemon's at a time, closed with the layer. Its
   * code is loaded when the layer is built: it imports this file's schemas, so a static import
   * here would be a cycle, and processes that only read records never load it.
   */
  static readonly layerSqlite = (filename: string): Layer.Layer<JobStore, JobStoreError> =>
    Layer.effect(
      JobStore,
      Effect.promise(() => import("./JobStoreSqlite.ts")).pipe(Effect.flatMap((sqlite) => sqlite.openSqliteJobStore(filename)))
    )
}
