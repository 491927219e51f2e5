/**
 * JobStore in a SQLite file through Node's built-in `node:sqlite` (WAL journal, synchronous
 * commits): one `runs` table, created and changed by numbered migrations recorded in
 * `PRAGMA user_version`, so a store written by an older simmer opens in a newer one. A commit is
 * on disk before it returns, so a kill -9 loses at most the statement in flight, and SQLite's
 * journal makes the file open cleanly afterwards.
 * `<file>.lock` (io/ProcessLock.ts) keeps it to one daemon: a second would recover and start the
 * same queued runs.
 *
 * Why not @effect/sql-sqlite-node: its only 4.x release (4.0.0-beta.102) imports
 * `effect/unstable/sql/*`, which effect 4.1 no longer exports (those modules became `effect/sql`),
 * so it fails to load with the effect this project pins. The queries here are few and fixed.
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite"
import { Effect, Option, Schema, type Scope } from "effect"
import { type JobStore, JobStoreError, LoggedProgress, RunRecord, RunStatuses, type RunStatus, type StatusChange } from "./JobStore.ts"
import { describeCause } from "../io/Errors.ts"
import { takeProcessLock } from "../io/ProcessLock.ts"

/** Each entry moves the schema one version up; never edit one that has shipped, add another. */
const migrations: ReadonlyArray<string> = [
  `CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    first INTEGER NOT NULL DEFAULT 0,
    submitted_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    error TEXT,
    progress TEXT
  );
  CREATE INDEX runs_queue ON runs (status, first DESC, priority DESC, seq);`
]

interface Row {
  readonly seq: number
  readonly id: string
  readonly name: string
  readonly priority: number
  readonly status: string
  readonly first: number
  readonly submitted_at: string
  readonly started_at: string | null
  readonly ended_at: string | null
  readonly error: string | null
  readonly progress: string | null
}

const decodeRecord = Schema.decodeUnknownSync(RunRecord)
const decodeProgress = Schema.decodeUnknownOption(Schema.fromJsonString(LoggedProgress))

const toRecord = (row: Row): RunRecord =>
  decodeRecord({
    id: row.id,
    name: row.name,
    priority: row.priority,
    status: row.status,
    seq: row.seq,
    submittedAt: row.submitted_at,
    ...(row.started_at !== null ? { startedAt: row.started_at } : {}),
    ...(row.ended_at !== null ? { endedAt: row.ended_at } : {}),
    ...(row.error !== null ? { error: row.error } : {}),
    first: row.first !== 0,
    // A progress summary that does not decode is only a summary: the event log still has it all.
    ...(row.progress !== null ? Option.match(decodeProgress(row.progress), { onNone: () => ({}), onSome: (progress) => ({ progress }) }) : {})
  })

/**
 * node:sqlite warns once per process that it is experimental; it is imported only when a store
 * is opened (other commands never load it), and that one warning is kept out of the daemon's log.
 */
const loadSqlite = async () => {
  const emit = process.emitWarning
  process.emitWarning = ((warning: string | Error, ...rest: Array<unknown>) => {
    if (!String(warning instanceof Error ? warning.message : warning).includes("SQLite is an experimental feature")) {
      ;(emit as (...args: Array<unknown>) => void).call(process, warning, ...rest)
    }
  }) as typeof process.emitWarning
  try {
    return await import("node:sqlite")
  } finally {
    process.emitWarning = emit
  }
}

/** Opens (creating if missing) and migrates the store; its schema version is newer than this simmer's → refused. */
const openDatabase = async (filename: string): Promise<DatabaseSync> => {
  const { DatabaseSync } = await loadSqlite()
  const db = new DatabaseSync(filename)
  try {
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000")
    const { user_version: version } = db.prepare("PRAGMA user_version").get() as { user_version: number }
    if (version > migrations.length) {
      throw new Error(`it was written by a newer simmer (schema version ${version}, this simmer knows ${migrations.length})`)
    }
    for (let v = version; v < migrations.length; v++) {
      db.exec("BEGIN IMMEDIATE")
      try {
        db.exec(migrations[v])
        db.exec(`PRAGMA user_version = ${v + 1}`)
        db.exec("COMMIT")
      } catch (cause) {
        db.exec("ROLLBACK")
        throw cause
      }
    }
    return db
  } catch (cause) {
    db.close()
    throw cause
  }
}

/** The store in `filename`, migrated to this simmer's schema, closed when the scope closes. */
export const openSqliteJobStore = (filename: string): Effect.Effect<JobStore["Service"], JobStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const fail = (cause: unknown) => new JobStoreError({ message: `The job store ${filename} failed: ${describeCause(cause)}.` })
    yield* takeProcessLock(`${filename}.lock`, {
      held: (_, holder) =>
        new JobStoreError({
          message: `The job store ${filename} is in use by another simmer serve (${holder}). ` +
            `Stop it first (SIGTERM), or give this one another --data folder.`
        }),
      failed: (path, cause) => new JobStoreError({ message: `Cannot lock the job store (${path}): ${cause}.` })
    })
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => openDatabase(filename), catch: fail }),
      (db) => Effect.sync(() => db.close())
    )
    const query = <A>(f: () => A) => Effect.try({ try: f, catch: fail })
    const rows = (text: string, ...params: Array<SQLInputValue>) => query(() => (db.prepare(text).all(...params) as unknown as Array<Row>).map(toRecord))

    const changeColumns = (change: StatusChange) => {
      // A run that starts again forgets how it ended last time.
      const again = change.status === "queued" || change.status === "running"
      const columns: Record<string, SQLInputValue> = {
        status: change.status,
        ...(again ? { error: null, ended_at: null } : {}),
        ...(change.startedAt !== undefined ? { started_at: change.startedAt } : {}),
        ...(change.endedAt !== undefined ? { ended_at: change.endedAt } : {}),
        ...(change.error !== undefined ? { error: change.error } : {}),
        ...(change.first !== undefined ? { first: change.first ? 1 : 0 } : {})
      }
      return { set: Object.keys(columns).map((c) => `${c} = ?`).join(", "), values: Object.values(columns) }
    }
    const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ")

    return {
      location: filename,
      insert: (input) =>
        rows(
          "INSERT INTO runs (id, name, priority, status, submitted_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
          input.id,
          input.name,
          input.priority,
          input.status ?? "queued",
          new Date().toISOString()
        ).pipe(Effect.map((rs) => rs[0])),
      get: (id) => rows("SELECT * FROM runs WHERE id = ?", id).pipe(Effect.map((rs) => Option.fromNullishOr(rs[0]))),
      list: ({ status, limit, offset }) =>
        Effect.gen(function*() {
          const where = status !== undefined ? "WHERE status = ?" : ""
          const filter = status !== undefined ? [status] : []
          const runs = yield* rows(`SELECT * FROM runs ${where} ORDER BY seq DESC LIMIT ? OFFSET ?`, ...filter, limit, offset)
          const { total } = yield* query(() => db.prepare(`SELECT COUNT(*) AS total FROM runs ${where}`).get(...filter) as { total: number })
          return { runs, total }
        }),
      all: rows("SELECT * FROM runs ORDER BY seq"),
      nextQueued: (skip) =>
        rows(
          `SELECT * FROM runs WHERE status = 'queued' ${skip.length > 0 ? `AND id NOT IN (${placeholders(skip.length)})` : ""}
           ORDER BY first DESC, priority DESC, seq LIMIT 1`,
          ...skip
        ).pipe(Effect.map((rs) => Option.fromNullishOr(rs[0]))),
      setStatus: (id, change) => {
        const { set, values } = changeColumns(change)
        return query(() => db.prepare(`UPDATE runs SET ${set} WHERE id = ?`).run(...values, id)).pipe(Effect.asVoid)
      },
      transition: (id, from, change) => {
        const { set, values } = changeColumns(change)
        return query(() => db.prepare(`UPDATE runs SET ${set} WHERE id = ? AND status IN (${placeholders(from.length)})`).run(...values, id, ...from))
          .pipe(Effect.map((result) => Number(result.changes) === 1))
      },
      setProgress: (id, progress) =>
        query(() => db.prepare("UPDATE runs SET progress = ? WHERE id = ?").run(JSON.stringify(progress), id)).pipe(Effect.asVoid),
      remove: (id) => query(() => db.prepare("DELETE FROM runs WHERE id = ?").run(id)).pipe(Effect.asVoid),
      countByStatus: query(() => db.prepare("SELECT status, COUNT(*) AS n FROM runs GROUP BY status").all() as Array<{ status: string; n: number }>).pipe(
        Effect.map((counted) => {
          const counts = Object.fromEntries(RunStatuses.map((s) => [s, 0])) as Record<RunStatus, number>
          for (const row of counted) if ((RunStatuses as ReadonlyArray<string>).includes(row.status)) counts[row.status as RunStatus] = row.n
          return counts
        })
      )
    }
  })
