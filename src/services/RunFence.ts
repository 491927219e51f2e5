/**
 * RunFence: the fencing token that keeps a run on one machine at a time. A runner that takes a
 * run over acquires the run's next epoch; before every write into the run folder it checks that
 * its epoch is still the current one. A runner that was paused (SIGSTOP, a VM freeze, a network
 * partition) while its run moved elsewhere finds a newer epoch and is refused, so its late
 * writes never land in the folder the new owner is writing. `RunFence.layerPostgres` keeps the
 * epochs in Postgres, beside the cluster's own tables.
 */
import { Context, Duration, Effect, Layer, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { SqlError } from "effect/sql/SqlError"

/** Another runner took the run over: this one must not write into it any more. */
export class FencedOut extends Schema.TaggedError<FencedOut>()("FencedOut", {
  run: Schema.String,
  epoch: Schema.Number,
  current: Schema.Number,
  holder: Schema.String,
  message: Schema.String
}) {}

/** The fence's storage cannot be reached (after retrying): nothing may be written meanwhile. */
export class FenceUnavailable extends Schema.TaggedError<FenceUnavailable>()("FenceUnavailable", {
  run: Schema.String,
  message: Schema.String
}) {}

export interface FenceToken {
  readonly run: string
  readonly epoch: number
  readonly holder: string
}

const retryWindow = Duration.minutes(1)

/** The advisory lock key serialising simmer's DDL ("simmer" in ASCII). */
const schemaLock = 0x73696d6d6572

const retrying = <A>(run: string, doing: string, effect: Effect.Effect<A, SqlError>) =>
  effect.pipe(
    Effect.retry({ schedule: Schedule.spaced("500 millis"), times: Math.ceil(Duration.toMillis(retryWindow) / 500) }),
    Effect.mapError((e) => new FenceUnavailable({ run, message: `Cannot ${doing} the fencing token of run ${run} in Postgres: ${e.message}` }))
  )

/** The fence in the database of the SqlClient (see `RunFence.layerPostgres`). */
const makePostgresFence = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // Runners start together: concurrent CREATE TABLE IF NOT EXISTS can still collide in
  // Postgres's catalog, so the DDL runs under a transaction-scoped advisory lock.
  yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${schemaLock})`
    yield* sql`CREATE TABLE IF NOT EXISTS simmer_run_fence (
      run_id TEXT PRIMARY KEY,
      epoch BIGINT NOT NULL,
      holder TEXT NOT NULL,
      since TIMESTAMPTZ NOT NULL DEFAULT now()
    )`
  }))

  const acquire = (run: string, holder: string) =>
    retrying(
      run,
      "take",
      sql<{ readonly epoch: string | number }>`INSERT INTO simmer_run_fence (run_id, epoch, holder) VALUES (${run}, 1, ${holder})
        ON CONFLICT (run_id) DO UPDATE SET epoch = simmer_run_fence.epoch + 1, holder = EXCLUDED.holder, since = now()
        RETURNING epoch`
    ).pipe(Effect.map((rows): FenceToken => ({ run, epoch: Number(rows[0].epoch), holder })))

  const check = (token: FenceToken) =>
    retrying(token.run, "check", sql<{ readonly epoch: string | number; readonly holder: string }>`SELECT epoch, holder FROM simmer_run_fence WHERE run_id = ${token.run}`).pipe(
      Effect.flatMap((rows) => {
        const current = rows.length === 0 ? 0 : Number(rows[0].epoch)
        if (current === token.epoch) return Effect.void
        const holder = rows[0]?.holder ?? "nobody"
        return Effect.fail(
          new FencedOut({
            run: token.run,
            epoch: token.epoch,
            current,
            holder,
            message: `Run ${token.run} moved to ${holder} (fencing epoch ${current}); ${token.holder} held epoch ${token.epoch} and ` +
              `may no longer write into it, so this write was refused.`
          })
        )
      })
    )

  return RunFence.of({ acquire, check })
})

export class RunFence extends Context.Service<RunFence, {
  /** Takes `run` over for `holder`: the run's epoch goes up by one and the new token is returned. */
  readonly acquire: (run: string, holder: string) => Effect.Effect<FenceToken, FenceUnavailable>
  /** Succeeds only while `token` is the run's current epoch. */
  readonly check: (token: FenceToken) => Effect.Effect<void, FencedOut | FenceUnavailable>
}>()("simmer/RunFence") {
  /**
   * The epochs in Postgres: one row per run, `simmer_run_fence (run_id, epoch, holder, since)`,
   * in the database the cluster keeps its runners, shard locks and messages in. Taking a run over
   * is one atomic upsert that increments the epoch; a check reads the row. A Postgres restart is
   * ridden out: each statement is retried for up to a minute before the fence reports itself
   * unavailable (and nothing is written meanwhile).
   */
  static readonly layerPostgres: Layer.Layer<RunFence, SqlError, SqlClient.SqlClient> = Layer.effect(RunFence, makePostgresFence)
}
