/**
 * A checkpoint's manifest: the sha256 and size of every file in a stage folder, written after
 * the checkpoint itself. A stage is trusted only when its manifest exists and every file still
 * hashes to it, so a folder cut short by a crash, or corrupted on disk later, is never used.
 */
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import { readdir, readFile, stat } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Result, Schema } from "effect"
import { writeFileAtomically } from "./AtomicWrite.ts"
import { describeCause, FileSystemError } from "./Errors.ts"

export const manifestFileName = "manifest.json"

export const Manifest = Schema.Struct({
  format: Schema.Literal("simmer-manifest-v1"),
  files: Schema.Record(Schema.String, Schema.Struct({ sha256: Schema.String, bytes: Schema.Int }))
})
export type Manifest = typeof Manifest.Type

export class CorruptStage extends Schema.TaggedError<CorruptStage>()("CorruptStage", {
  path: Schema.String,
  message: Schema.String
}) {}

const sha256File = (path: string) =>
  Effect.tryPromise({
    try: () =>
      new Promise<string>((resolve, reject) => {
        const hash = createHash("sha256")
        createReadStream(path).on("data", (chunk) => hash.update(chunk)).on("error", reject).on("end", () => resolve(hash.digest("hex")))
      }),
    catch: (cause) => new FileSystemError({ path, message: `Cannot read ${path}: ${describeCause(cause)}.` })
  })

const listFiles = (dir: string) =>
  Effect.tryPromise({
    try: async () => (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && e.name !== manifestFileName).map((e) => e.name).sort(),
    catch: (cause) => new FileSystemError({ path: dir, message: `Cannot list ${dir}: ${describeCause(cause)}.` })
  })

const hashFolder = (dir: string) =>
  Effect.gen(function*() {
    const files: Record<string, { sha256: string; bytes: number }> = {}
    for (const name of yield* listFiles(dir)) {
      const path = join(dir, name)
      const bytes = (yield* Effect.tryPromise({
        try: () => stat(path),
        catch: (cause) => new FileSystemError({ path, message: `Cannot read ${path}: ${describeCause(cause)}.` })
      })).size
      files[name] = { sha256: yield* sha256File(path), bytes }
    }
    return files
  })

/** Hashes every file of `dir` and writes manifest.json atomically beside them. */
export const writeManifest = Effect.fn("Manifest.write")(function*(dir: string) {
  const manifest: Manifest = { format: "simmer-manifest-v1", files: yield* hashFolder(dir) }
  yield* writeFileAtomically(join(dir, manifestFileName), JSON.stringify(manifest, null, 2) + "\n")
  return manifest
})

const decodeManifest = Schema.decodeUnknownResult(Schema.fromJsonString(Manifest))

/** Checks `dir` against its manifest: every listed file present with the same size and sha256, nothing missing. */
export const verifyManifest = Effect.fn("Manifest.verify")(function*(dir: string) {
  const path = join(dir, manifestFileName)
  const corrupt = (why: string) => new CorruptStage({ path: dir, message: `The checkpoint ${dir} cannot be trusted: ${why}.` })
  const text = yield* Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: () => corrupt("it has no manifest.json (it was not completely written)")
  })
  const decoded = decodeManifest(text)
  if (Result.isFailure(decoded)) return yield* corrupt("its manifest.json is malformed")
  const manifest = decoded.success
  const actual = yield* hashFolder(dir).pipe(Effect.mapError((e) => corrupt(e.message)))
  for (const [name, expected] of Object.entries(manifest.files)) {
    const found = actual[name]
    if (found === undefined) return yield* corrupt(`${name} is missing`)
    if (found.bytes !== expected.bytes) return yield* corrupt(`${name} has ${found.bytes} bytes, the manifest says ${expected.bytes}`)
    if (found.sha256 !== expected.sha256) return yield* corrupt(`${name} does not match its sha256 in the manifest`)
  }
  return manifest
})
