/**
 * Atomic writes of whole folders (a checkpoint, a run's iteration) and of single files.
 *
 * A folder is written into a hidden temporary sibling (`.<name>.partial-<pid>-<random>`), every
 * file in it and the folder itself are fsynced, and only then is it renamed to its final name
 * and the parent folder fsynced. rename(2) within one file system is atomic, so a reader (or a
 * process restarted after kill -9 or power loss) sees either no target or a complete one. Any
 * failure or interruption before the rename removes the temporary folder.
 *
 * Replacing an existing folder (`onExisting: "replace"`): POSIX has no atomic exchange of two
 * directories that Node exposes, so the old folder is first renamed aside to
 * `.<name>.previous-<pid>-<random>`, the new one renamed into place, and the old one deleted.
 * A crash between the two renames leaves no target but a complete previous copy beside it;
 * `recoverFolder` puts it back (and removes leftovers), so callers run it before reading a
 * folder they may have been replacing. The default, `onExisting: "fail"`, never touches an
 * existing folder and fails with TargetExists.
 */
import { randomBytes } from "node:crypto"
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import { Effect } from "effect"
import { errnoCode, FileSystemError, fsError, TargetExists } from "./Errors.ts"

export interface AtomicFolderOptions {
  /** What to do when the target exists: fail (default) or replace it as described above. */
  readonly onExisting?: "fail" | "replace"
}

const attempt = <A>(path: string, doing: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: fsError(path, doing) })

const suffix = () => randomBytes(8).toString("hex")

const partialName = (target: string) => `.${basename(target)}.partial-${suffix()}`
const previousName = (target: string) => `.${basename(target)}.previous-${suffix()}`

const escapeRegExp = (text: string) => text.replace(/[.*+?^$()|[\]{}\\]/g, "\\$&")

/**
 * Matches exactly the temporary names of `target` (not those of a target named e.g.
 * "x.partial-1"); simmer 0.1 put its pid in them.
 */
const leftoverPattern = (target: string, kind: "partial" | "previous") =>
  new RegExp(`^\\.${escapeRegExp(basename(target))}\\.${kind}-(\\d+-[0-9a-f]{8}|[0-9a-f]{16})$`)

/** True when `path` exists (any kind of entry). */
export const pathExists = (path: string) =>
  Effect.tryPromise({
    try: async () => {
      try {
        await stat(path)
        return true
      } catch (cause) {
        if (errnoCode(cause) === "ENOENT") return false
        throw cause
      }
    },
    catch: fsError(path, "inspect")
  })

const fsyncPath = async (path: string, isDirectory: boolean): Promise<void> => {
  let handle
  try {
    handle = await open(path, "r")
  } catch (cause) {
    // Some platforms (Windows) cannot open a directory; its entries are durable with the files.
    if (isDirectory && ["EISDIR", "EPERM", "EACCES"].includes(errnoCode(cause) ?? "")) return
    throw cause
  }
  try {
    await handle.sync()
  } catch (cause) {
    if (!(isDirectory && ["EINVAL", "EBADF", "EPERM"].includes(errnoCode(cause) ?? ""))) throw cause
  } finally {
    await handle.close()
  }
}

/** fsyncs every file under `dir`, then the directories bottom-up, so the whole tree is on disk. */
export const fsyncTree = (dir: string) =>
  attempt(dir, "flush", async () => {
    const walk = async (path: string): Promise<void> => {
      for (const entry of await readdir(path, { withFileTypes: true })) {
        const child = join(path, entry.name)
        if (entry.isDirectory()) await walk(child)
        else if (entry.isFile()) await fsyncPath(child, false)
      }
      await fsyncPath(path, true)
    }
    await walk(dir)
  })

/** fsyncs a directory so that renames and creations inside it are durable. */
export const fsyncDirectory = (dir: string) => attempt(dir, "flush", () => fsyncPath(dir, true))

/**
 * Runs `write` on a fresh temporary folder and atomically publishes it as `target`.
 * Nothing exists at `target` unless `write` succeeded and everything it wrote reached the disk.
 */
export const writeFolderAtomically = <A, E, R>(
  target: string,
  write: (tempDir: string) => Effect.Effect<A, E, R>,
  options: AtomicFolderOptions = {}
): Effect.Effect<A, E | FileSystemError | TargetExists, R> => {
  const parent = dirname(target)
  const onExisting = options.onExisting ?? "fail"
  const exists = () =>
    new TargetExists({
      path: target,
      message: `${target} already exists; refusing to overwrite it (choose another folder or ask to replace it).`
    })
  const publish = (tempDir: string) =>
    Effect.gen(function*() {
      yield* fsyncTree(tempDir)
      const present = yield* pathExists(target)
      if (present && onExisting === "fail") return yield* exists()
      if (!present) {
        yield* Effect.tryPromise({
          try: () => rename(tempDir, target),
          // A folder created meanwhile makes rename fail (non-empty) instead of being clobbered.
          catch: (cause) =>
            ["ENOTEMPTY", "EEXIST"].includes(errnoCode(cause) ?? "") ? exists() : fsError(target, "create")(cause)
        })
        yield* fsyncDirectory(parent)
        return
      }
      const aside = join(parent, previousName(target))
      yield* attempt(target, "move aside", () => rename(target, aside))
      yield* fsyncDirectory(parent)
      yield* attempt(target, "replace", () => rename(tempDir, target)).pipe(
        // Put the previous folder back so a failed replacement changes nothing.
        Effect.tapError(() => Effect.promise(() => rename(aside, target).catch(() => undefined)))
      )
      yield* fsyncDirectory(parent)
      // The new folder is in place; a previous copy that cannot be deleted now is a leftover
      // for `recoverFolder`, not a failure of the write.
      yield* Effect.promise(() => rm(aside, { recursive: true, force: true }).catch(() => undefined))
    })
  return Effect.acquireUseRelease(
    Effect.gen(function*() {
      if (onExisting === "fail" && (yield* pathExists(target))) return yield* exists()
      yield* attempt(parent, "create", () => mkdir(parent, { recursive: true }))
      const tempDir = join(parent, partialName(target))
      yield* attempt(tempDir, "create", () => mkdir(tempDir))
      return tempDir
    }),
    (tempDir) =>
      Effect.gen(function*() {
        const result = yield* write(tempDir)
        // The rename sequence must not be cut in half by an interruption.
        yield* Effect.uninterruptible(publish(tempDir))
        return result
      }),
    // After a successful publish the temporary folder no longer exists; otherwise remove it.
    (tempDir) => Effect.promise(() => rm(tempDir, { recursive: true, force: true }).catch(() => undefined))
  )
}

/**
 * Writes one file atomically: temporary sibling, fsync, rename over `path`, fsync the folder.
 * Replaces an existing file (rename over a file is atomic).
 */
export const writeFileAtomically = (path: string, data: string | Uint8Array) => {
  const temp = join(dirname(path), `.${basename(path)}.partial-${suffix()}`)
  return Effect.gen(function*() {
    yield* attempt(temp, "write", async () => {
      const handle = await open(temp, "wx")
      try {
        await handle.writeFile(data)
        await handle.sync()
      } finally {
        await handle.close()
      }
    })
    yield* attempt(path, "write", () => rename(temp, path))
    yield* fsyncDirectory(dirname(path))
  }).pipe(Effect.onError(() => Effect.promise(() => rm(temp, { force: true }).catch(() => undefined))))
}

export type RecoveryOutcome = "intact" | "restored" | "absent"

/**
 * Repairs what a crash during `writeFolderAtomically(target, ...)` can leave: restores a
 * previous copy moved aside by an interrupted replacement when the target is missing, and
 * deletes stale temporary folders. Returns whether the target was intact, restored or absent.
 * Run it only when no other process is writing that target.
 */
export const recoverFolder = Effect.fn("AtomicWrite.recoverFolder")(function*(target: string) {
  const parent = dirname(target)
  const entries = yield* Effect.tryPromise({
    try: async () => {
      try {
        return await readdir(parent)
      } catch (cause) {
        if (errnoCode(cause) === "ENOENT") return [] as Array<string>
        throw cause
      }
    },
    catch: fsError(parent, "list")
  })
  const previous = entries.filter((e) => leftoverPattern(target, "previous").test(e)).sort()
  const partial = entries.filter((e) => leftoverPattern(target, "partial").test(e))
  let outcome: RecoveryOutcome = (yield* pathExists(target)) ? "intact" : "absent"
  if (outcome === "absent" && previous.length > 0) {
    // Only one replacement can have been in flight; should there be several, take the last name.
    const restore = previous.pop()!
    yield* attempt(target, "restore", () => rename(join(parent, restore), target))
    yield* fsyncDirectory(parent)
    outcome = "restored"
  }
  for (const leftover of [...previous, ...partial]) {
    yield* attempt(join(parent, leftover), "remove", () => rm(join(parent, leftover), { recursive: true, force: true }))
  }
  return outcome
})
