/**
 * A lock file that says which process writes somewhere: a run folder (one `simmer run`,
 * `resume` or daemon run at a time) or a daemon's job store (one `simmer serve` per data
 * folder). The file holds the owner's pid, host and process start time; it is created with
 * O_EXCL and removed when the holder's scope closes. A lock whose owner no longer runs (kill -9,
 * a crash) is taken over; a reused pid is told apart by its start time. Another host's owner
 * cannot be checked and counts as alive.
 */
import { open, readFile, rename, rm } from "node:fs/promises"
import { hostname } from "node:os"
import { Context, Effect, Option, Schema, type Scope } from "effect"
import { describeCause, errnoCode } from "./Errors.ts"

/**
 * Who takes locks in this process: its pid (what a takeover checks is alive) and the command it
 * runs, for the message another process shows. The CLI provides its command line; elsewhere (the
 * daemon's children, tests) a lock says only "simmer".
 */
export const LockingProcess = Context.Reference<{ readonly pid: number; readonly command: string }>("simmer/LockingProcess", {
  defaultValue: () => ({ pid: process.pid, command: "simmer" })
})

const LockOwner = Schema.Struct({
  pid: Schema.Int,
  host: Schema.String,
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat), so a reused pid is not mistaken for the owner. */
  processStart: Schema.optionalKey(Schema.String),
  since: Schema.String,
  command: Schema.String
})
type LockOwner = typeof LockOwner.Type

const decodeOwner = Schema.decodeUnknownOption(Schema.fromJsonString(LockOwner))

const processStart = async (pid: number): Promise<string | undefined> => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8")
    // Field 22 (starttime); the command name (field 2) may contain spaces, so count after its ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  } catch {
    return undefined
  }
}

/** Whether the process that wrote `owner` still runs (on this host; another host's cannot be checked). */
const ownerAlive = async (owner: LockOwner): Promise<boolean> => {
  if (owner.host !== hostname()) return true
  try {
    process.kill(owner.pid, 0)
  } catch (cause) {
    return errnoCode(cause) === "EPERM"
  }
  if (owner.processStart === undefined) return true
  const now = await processStart(owner.pid)
  return now === undefined || now === owner.processStart
}

const describeOwner = (owner: LockOwner) => `pid ${owner.pid} on ${owner.host}, since ${owner.since} (${owner.command})`

export interface LockErrors<E> {
  /** Another live process holds the lock; `holder` describes it (pid, host, since, command). */
  readonly held: (path: string, holder: string) => E
  /** The lock file could not be read or written. */
  readonly failed: (path: string, cause: string) => E
}

/** Takes the lock at `path` for this process until the scope closes. */
export const takeProcessLock = <E>(path: string, errors: LockErrors<E>): Effect.Effect<void, E, Scope.Scope> =>
  Effect.gen(function*() {
    const { pid, command } = yield* LockingProcess
    const take = Effect.tryPromise({
      try: async (): Promise<LockOwner | undefined> => {
        const me: LockOwner = {
          pid,
          host: hostname(),
          ...(await processStart(pid).then((s) => (s === undefined ? {} : { processStart: s }))),
          since: new Date().toISOString(),
          command
        }
        for (let attempt = 0; attempt < 2; attempt++) {
          try {
            const handle = await open(path, "wx")
            try {
              await handle.writeFile(JSON.stringify(me) + "\n")
              await handle.sync()
            } finally {
              await handle.close()
            }
            return undefined
          } catch (cause) {
            if (errnoCode(cause) !== "EEXIST") throw cause
          }
          const owner = decodeOwner(await readFile(path, "utf8").catch(() => ""))
          // A lock being written this very moment reads as empty: treat it as held.
          if (Option.isNone(owner)) return { pid: 0, host: "?", since: "now", command: "another simmer process" }
          if (await ownerAlive(owner.value)) return owner.value
          // The owner is gone (kill -9, a crash): move its lock aside, then race for a fresh one.
          await rename(path, `${path}.stale-${pid}`).catch(() => undefined)
          await rm(`${path}.stale-${pid}`, { force: true })
        }
        throw new Error("the lock changed hands while it was being taken")
      },
      catch: (cause) => errors.failed(path, describeCause(cause))
    }).pipe(Effect.flatMap((holder) => (holder === undefined ? Effect.void : Effect.fail(errors.held(path, describeOwner(holder))))))
    const release = Effect.promise(async () => {
      const owner = decodeOwner(await readFile(path, "utf8").catch(() => ""))
      if (Option.isSome(owner) && owner.value.pid === pid && owner.value.host === hostname()) await rm(path, { force: true })
    })
    yield* Effect.acquireRelease(take, () => release)
  })
