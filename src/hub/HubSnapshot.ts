/**
 * Brings the files of one revision of a Hub repository into the cache (see HubCache.ts) and
 * returns the snapshot folder, pinned to the commit the revision named at that moment.
 *
 * The Hub's API is spoken by the maintained `@huggingface/hub` client (repository info for the
 * commit, the file listing with sizes and hashes, file downloads with redirects and ranges).
 * The cache itself is laid out here, because that client's own cache function files each file
 * under the commit that last changed it rather than the repository's, writes no `refs/`, cannot
 * resume and checks no hash. Each file is downloaded into `blobs/<etag>.incomplete`, continued
 * by a range request when a transfer breaks (also across runs), checked against the Hub's
 * sha256 (LFS files) or git blob hash (small files), and only then renamed into place.
 */
import { createHash } from "node:crypto"
import { createReadStream, createWriteStream } from "node:fs"
import { mkdir, open, readdir, rename, stat, truncate, unlink } from "node:fs/promises"
import { join, relative } from "node:path"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { datasetInfo, downloadFile, HubApiError, listFiles, modelInfo } from "@huggingface/hub"
import { Effect } from "effect"
import { describeCause, errnoCode } from "../io/Errors.ts"
import { takeProcessLock } from "../io/ProcessLock.ts"
import { blobPath, cachedCommit, linkSnapshotFile, repoFolder, snapshotDir, writeRef } from "./HubCache.ts"
import { HubError } from "./HubError.ts"
import { formatHubId, type HubId, isCommitSha, type RepoKind } from "./HubId.ts"
import { HubProgress } from "./HubProgress.ts"
import { type HubSettings, hubSettings } from "./HubSettings.ts"

/** One file of a repository as the Hub lists it. */
export interface RepoFile {
  readonly path: string
  readonly size: number
  /** The blob's name in the cache: the LFS sha256, else the git blob sha1. */
  readonly etag: string
  /** How to check the bytes: LFS files by sha256, others by their git blob hash. */
  readonly hash: "sha256" | "git-sha1"
}

/** Which of a repository's files are needed, or why the repository cannot serve. */
export type FileSelection = ReadonlyArray<string> | { readonly refused: HubError["reason"]; readonly message: string }

export interface SnapshotRequest {
  readonly kind: RepoKind
  readonly id: HubId
  readonly select: (paths: ReadonlyArray<string>) => FileSelection
}

export interface Snapshot {
  readonly dir: string
  /** The commit the revision pointed at: what a run records to be repeatable. */
  readonly commit: string
  /** The selected files, relative to `dir`. */
  readonly files: ReadonlyArray<string>
}

const attemptsPerFile = 3

const hubErrorFor = (request: SnapshotRequest, settings: HubSettings) => {
  const id = formatHubId(request.id)
  const what = request.kind === "model" ? "model" : "dataset"
  return (cause: unknown, context: { readonly revisionExists?: boolean } = {}): HubError => {
    if (cause instanceof HubError) return cause
    if (cause instanceof HubApiError) {
      if (cause.statusCode === 401) {
        return new HubError({
          id,
          reason: "unauthorized",
          message: settings.token === undefined
            ? `${id}: the Hub refused access (401): the ${what} is private or gated, or the id is misspelt; set HF_TOKEN to a token that may read it.`
            : `${id}: the Hub refused access with HF_TOKEN (401): check that the token is valid and may read this ${what}.`
        })
      }
      if (cause.statusCode === 403) {
        return new HubError({
          id,
          reason: "gated",
          message: `${id}: the ${what} is gated (403): accept its terms on its Hub page with the account HF_TOKEN belongs to, then run again.`
        })
      }
      if (cause.statusCode === 404) {
        return context.revisionExists === false || request.id.revision === undefined
          ? new HubError({ id, reason: "repo-not-found", message: `${id}: no such ${what} on the Hub (404); check the id (org/name).` })
          : new HubError({
            id,
            reason: "revision-not-found",
            message: `${id}: the ${what} has no revision "${request.id.revision}" (404); name a branch, a tag or a commit sha that exists.`
          })
      }
      return new HubError({ id, reason: "bad-response", message: `${id}: the Hub answered ${cause.statusCode}: ${cause.message}` })
    }
    const code = errnoCode(cause) ?? errnoCode((cause as { cause?: unknown } | undefined)?.cause)
    if (code === "ENOSPC") {
      return new HubError({
        id,
        reason: "disk-full",
        message: `${id}: the disk holding the Hub cache (${settings.cacheDir}) is full; free space and run again (the download continues where it stopped), or set HF_HUB_CACHE to a larger disk.`
      })
    }
    if (cause instanceof TypeError && /fetch failed/.test(cause.message)) {
      return new HubError({
        id,
        reason: "unreachable",
        message: `${id}: cannot reach the Hub${settings.endpoint !== undefined ? ` at ${settings.endpoint}` : ""} (${describeCause(cause.cause ?? cause)}); ` +
          "check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only what the cache holds."
      })
    }
    return new HubError({ id, reason: "bad-response", message: `${id}: ${describeCause(cause)}` })
  }
}

const hashOfFile = (path: string, hash: RepoFile["hash"], size: number) =>
  new Promise<string>((resolvePromise, reject) => {
    const digest = createHash(hash === "sha256" ? "sha256" : "sha1")
    if (hash === "git-sha1") digest.update(`blob ${size}\0`)
    createReadStream(path).on("data", (chunk) => digest.update(chunk)).on("error", reject).on("end", () => resolvePromise(digest.digest("hex")))
  })

const sizeOf = (path: string) => stat(path).then((s) => s.size, () => undefined)

/** Every file under `dir`, relative to it, following the snapshot's symlinks. */
const listSnapshot = async (dir: string): Promise<Array<string>> => {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  const files: Array<string> = []
  for (const entry of entries) {
    const full = join(entry.parentPath, entry.name)
    if ((await stat(full).catch(() => undefined))?.isFile() === true) files.push(relative(dir, full))
  }
  return files
}

/** The snapshot of `request` as the cache holds it, without a request to the Hub. */
const cachedSnapshot = (request: SnapshotRequest, settings: HubSettings) =>
  Effect.gen(function*() {
    const id = formatHubId(request.id)
    const repoDir = repoFolder(settings.cacheDir, request.kind, request.id.repo)
    const commit = yield* cachedCommit(repoDir, request.id.revision ?? "main")
    const notCached = (missing: string) =>
      new HubError({
        id,
        reason: "not-cached",
        message: `${id}: ${missing} in the Hub cache (${settings.cacheDir}) and HF_HUB_OFFLINE is set; ` +
          "download it once with the network (unset HF_HUB_OFFLINE), or point HF_HUB_CACHE at a cache that has it."
      })
    if (commit === undefined) return yield* notCached(`revision ${request.id.revision ?? "main"} is not`)
    const dir = snapshotDir(repoDir, commit)
    const present = yield* Effect.promise(() => listSnapshot(dir))
    const selection = request.select(present)
    if (!Array.isArray(selection)) {
      if (present.length === 0) return yield* notCached(`commit ${commit} is not`)
      const refused = selection as Exclude<FileSelection, ReadonlyArray<string>>
      return yield* new HubError({ id, reason: refused.refused, message: `${id}: ${refused.message}` })
    }
    const files = selection as ReadonlyArray<string>
    const missing = files.filter((f) => !present.includes(f))
    if (missing.length > 0) return yield* notCached(`${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not`)
    return { dir, commit, files } satisfies Snapshot
  })

/**
 * Holds `<blob>.lock` while this process downloads the blob: another process (or run) fetching
 * the same file waits for it rather than appending to the same partial file.
 */
const lockBlob = (id: string, blob: string) =>
  Effect.gen(function*() {
    for (let waited = 0; ; waited++) {
      const taken = yield* takeProcessLock<string | HubError>(`${blob}.lock`, {
        held: (_, holder) => holder,
        failed: (path, cause) => new HubError({ id, reason: "bad-response", message: `${id}: cannot lock ${path}: ${cause}` })
      }).pipe(Effect.map(() => undefined), Effect.catchIf((e): e is string => typeof e === "string", (holder) => Effect.succeed(holder)))
      if (taken === undefined) return
      if (waited === 0) yield* Effect.logInfo(`${id}: waiting for ${holder(taken)} to finish downloading the same file`)
      yield* Effect.sleep("1 second")
    }
  })

const holder = (description: string) => description.replace(/ \(.*$/, "")

/** Downloads one file into its blob (resuming a partial one), verifies it and links it into the snapshot. */
const fetchFile = (request: SnapshotRequest, settings: HubSettings, repoDir: string, commit: string, file: RepoFile) =>
  Effect.scoped(Effect.gen(function*() {
    const id = formatHubId(request.id)
    const blob = blobPath(repoDir, file.etag)
    const cached = () => Effect.promise(() => sizeOf(blob)).pipe(Effect.map((size) => size === file.size))
    if (yield* cached()) return yield* linkSnapshotFile(repoDir, commit, file.path, file.etag)
    yield* Effect.tryPromise({ try: () => mkdir(join(repoDir, "blobs"), { recursive: true }), catch: (cause) => hubErrorFor(request, settings)(cause) })
    yield* lockBlob(id, blob)
    // Another process may have finished it while this one waited.
    if (yield* cached()) return yield* linkSnapshotFile(repoDir, commit, file.path, file.etag)
    const incomplete = `${blob}.incomplete`
    const progress = (yield* HubProgress)(`${id} ${file.path}`, file.size)
    const toError = hubErrorFor(request, settings)
    let lastFailure: unknown
    for (let attempt = 1; attempt <= attemptsPerFile; attempt++) {
      const failure = yield* Effect.tryPromise({
        try: async () => {
          let start = (await sizeOf(incomplete)) ?? 0
          if (start > file.size) {
            await truncate(incomplete, 0)
            start = 0
          }
          if (start < file.size) {
            const remote = await downloadFile({
              repo: { type: request.kind, name: request.id.repo },
              path: file.path,
              revision: commit,
              ...(settings.endpoint !== undefined ? { hubUrl: settings.endpoint } : {}),
              ...(settings.token !== undefined ? { accessToken: settings.token } : {})
            })
            if (remote === null) {
              throw new HubError({ id, reason: "file-not-found", message: `${id}: the Hub lists ${file.path} but does not serve it (404).` })
            }
            let written = start
            progress.update(written)
            const body = Readable.fromWeb(remote.slice(start).stream() as import("node:stream/web").ReadableStream)
            body.on("data", (chunk: Buffer) => progress.update((written += chunk.length)))
            await pipeline(body, createWriteStream(incomplete, { flags: "a" }))
          }
          const got = (await sizeOf(incomplete)) ?? 0
          if (got < file.size) throw new Error(`the transfer ended after ${got} of ${file.size} bytes`)
          const hash = await hashOfFile(incomplete, file.hash, file.size)
          if (hash !== file.etag) {
            await unlink(incomplete)
            throw new HubError({
              id,
              reason: "checksum-mismatch",
              message: `${id}: ${file.path} does not match the Hub's ${file.hash === "sha256" ? "sha256" : "git hash"} ` +
                `(expected ${file.etag}, got ${hash}); the download was removed; run again, and if it repeats, check HF_ENDPOINT or a proxy.`
            })
          }
          // Durable before it is visible under its final name: a crash never leaves a torn blob.
          const handle = await open(incomplete, "r+")
          await handle.sync().finally(() => handle.close())
          await rename(incomplete, blob)
        },
        catch: (cause) => cause
      }).pipe(Effect.flip, Effect.option)
      if (failure._tag === "None") {
        progress.finish()
        return yield* linkSnapshotFile(repoDir, commit, file.path, file.etag)
      }
      lastFailure = failure.value
      const mapped = toError(lastFailure)
      // Only a broken transfer is worth another try; a refusal or a bad hash will not change.
      if (mapped.reason !== "bad-response" && mapped.reason !== "unreachable") return yield* mapped
    }
    progress.finish()
    const kept = (yield* Effect.promise(() => sizeOf(incomplete))) ?? 0
    return yield* new HubError({
      id,
      reason: "interrupted",
      message: `${id}: downloading ${file.path} failed ${attemptsPerFile} times (${describeCause(lastFailure)}); ` +
        `${kept} of ${file.size} bytes are kept in the cache and the next run continues from there.`
    })
  }))

/** The files `request` selects, at the commit its revision names now, in the cache. */
export const fetchSnapshot = Effect.fn("Hub.fetchSnapshot")(function*(request: SnapshotRequest) {
  const settings = yield* hubSettings
  if (settings.offline) return yield* cachedSnapshot(request, settings)
  // A commit never changes: what the cache holds of it needs no request.
  if (request.id.revision !== undefined && isCommitSha(request.id.revision)) {
    const cached = yield* cachedSnapshot(request, settings).pipe(Effect.option)
    if (cached._tag === "Some") return cached.value
  }
  const id = formatHubId(request.id)
  const toError = hubErrorFor(request, settings)
  const credentials = {
    ...(settings.endpoint !== undefined ? { hubUrl: settings.endpoint } : {}),
    ...(settings.token !== undefined ? { accessToken: settings.token } : {})
  }
  const revision = request.id.revision ?? "main"
  const info = (rev: string) =>
    request.kind === "model"
      ? modelInfo({ name: request.id.repo, revision: rev, additionalFields: ["sha"], ...credentials })
      : datasetInfo({ name: request.id.repo, revision: rev, additionalFields: ["sha"], ...credentials })
  const commit = yield* Effect.tryPromise({ try: () => info(revision), catch: (cause) => cause }).pipe(
    Effect.catch((cause) =>
      // A 404 for a named revision: tell a missing revision from a missing repository.
      cause instanceof HubApiError && cause.statusCode === 404 && request.id.revision !== undefined
        ? Effect.tryPromise({ try: () => info("main"), catch: () => undefined }).pipe(
          Effect.matchEffect({
            onFailure: () => Effect.fail(toError(cause, { revisionExists: false })),
            onSuccess: () => Effect.fail(toError(cause, { revisionExists: true }))
          })
        )
        : Effect.fail(toError(cause))
    ),
    Effect.flatMap((found) => {
      const sha = (found as { sha?: unknown }).sha
      return typeof sha === "string" && /^[0-9a-f]{40}$/.test(sha)
        ? Effect.succeed(sha)
        : Effect.fail(new HubError({ id, reason: "bad-response", message: `${id}: the Hub's answer names no commit sha.` }))
    })
  )
  const listed = yield* Effect.tryPromise({
    try: async () => {
      const files: Array<RepoFile> = []
      for await (const entry of listFiles({ repo: { type: request.kind, name: request.id.repo }, revision: commit, recursive: true, ...credentials })) {
        if (entry.type !== "file") continue
        files.push(
          entry.lfs !== undefined
            ? { path: entry.path, size: entry.lfs.size, etag: entry.lfs.oid, hash: "sha256" }
            : { path: entry.path, size: entry.size, etag: entry.oid ?? "", hash: "git-sha1" }
        )
      }
      return files
    },
    catch: (cause) => toError(cause)
  })
  const selection = request.select(listed.map((f) => f.path))
  if (!Array.isArray(selection)) {
    const refused = selection as Exclude<FileSelection, ReadonlyArray<string>>
    return yield* new HubError({ id, reason: refused.refused, message: `${id}: ${refused.message}` })
  }
  const selected = selection as ReadonlyArray<string>
  const repoDir = repoFolder(settings.cacheDir, request.kind, request.id.repo)
  for (const path of selected) {
    yield* fetchFile(request, settings, repoDir, commit, listed.find((f) => f.path === path)!).pipe(
      Effect.mapError((e) => (e._tag === "HubError" ? e : toError(e)))
    )
  }
  yield* writeRef(repoDir, revision, commit).pipe(Effect.mapError(toError))
  return { dir: snapshotDir(repoDir, commit), commit, files: selected } satisfies Snapshot
})
