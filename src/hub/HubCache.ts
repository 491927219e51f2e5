/**
 * The cache layout Python's `huggingface_hub` writes, so files one tool downloaded serve the other:
 *
 *   <cache>/models--org--name/blobs/<etag>                 file contents (LFS: sha256; else git blob sha1)
 *   <cache>/models--org--name/refs/<revision>              the commit sha a branch or tag pointed at
 *   <cache>/models--org--name/snapshots/<commit>/<path>    -> ../../blobs/<etag> (relative symlink)
 *
 * Datasets live under `datasets--org--name`. A download is written to `blobs/<etag>.incomplete`
 * and renamed when whole and verified, so a blob is never half there.
 */
import { mkdir, readFile, symlink, unlink } from "node:fs/promises"
import { dirname, join, relative } from "node:path"
import { Effect } from "effect"
import { writeFileAtomically } from "../io/AtomicWrite.ts"
import { fsError } from "../io/Errors.ts"
import { isCommitSha, type RepoKind } from "./HubId.ts"

export const repoFolder = (cacheDir: string, kind: RepoKind, repo: string): string =>
  join(cacheDir, `${kind}s--${repo.replaceAll("/", "--")}`)

export const snapshotDir = (repoDir: string, commit: string): string => join(repoDir, "snapshots", commit)

/** The repository (`org/name`) whose snapshot `dir` is, or undefined for a folder outside the cache's layout. */
export const snapshotRepo = (dir: string): string | undefined =>
  /(?:^|\/)(?:model|dataset)s--([^/]+?)--([^/]+)\/snapshots\/[^/]+\/?$/.exec(dir)?.slice(1, 3).join("/")

export const blobPath = (repoDir: string, etag: string): string => join(repoDir, "blobs", etag)

/** The commit a revision names in the cache: itself when it is a sha, else what `refs/<revision>` says. */
export const cachedCommit = (repoDir: string, revision: string): Effect.Effect<string | undefined> =>
  isCommitSha(revision)
    ? Effect.succeed(revision)
    : Effect.promise(() => readFile(join(repoDir, "refs", revision), "utf8").then((text) => text.trim(), () => undefined)).pipe(
      Effect.map((commit) => (commit !== undefined && isCommitSha(commit) ? commit : undefined))
    )

/** Records which commit `revision` points at (nothing to record for a sha). */
export const writeRef = (repoDir: string, revision: string, commit: string) => {
  const ref = join(repoDir, "refs", revision)
  return isCommitSha(revision)
    ? Effect.void
    : Effect.tryPromise({ try: () => mkdir(dirname(ref), { recursive: true }), catch: fsError(ref, "create the folder of") }).pipe(
      Effect.andThen(writeFileAtomically(ref, commit))
    )
}

/** Links `snapshots/<commit>/<path>` to its blob, relatively, as huggingface_hub does. */
export const linkSnapshotFile = (repoDir: string, commit: string, path: string, etag: string) => {
  const link = join(snapshotDir(repoDir, commit), path)
  return Effect.tryPromise({
    try: async () => {
      await mkdir(dirname(link), { recursive: true })
      await unlink(link).catch(() => undefined)
      await symlink(relative(dirname(link), blobPath(repoDir, etag)), link)
    },
    catch: fsError(link, "link")
  })
}
