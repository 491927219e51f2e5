import { mkdir, readdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { recoverFolder, writeFileAtomically, writeFolderAtomically } from "../../src/io/AtomicWrite.ts"
import { tempDir } from "./_support.ts"

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)
const list = (dir: string) => promise(() => readdir(dir)).pipe(Effect.map((l) => l.sort()))
const put = (dir: string, name: string, text: string) => promise(() => writeFile(join(dir, name), text))

describe("writeFolderAtomically", () => {
  it.effect("publishes the folder under its name and leaves no temporary folder", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const target = join(root, "nested", "ckpt")
      const result = yield* writeFolderAtomically(target, (temp) =>
        Effect.gen(function*() {
          // The work happens elsewhere until it is complete.
          assert.notStrictEqual(temp, target)
          yield* put(temp, "a.txt", "A")
          yield* promise(() => mkdir(join(temp, "sub")))
          yield* put(join(temp, "sub"), "b.txt", "B")
          return 42
        }))
      assert.strictEqual(result, 42)
      assert.deepStrictEqual(yield* list(join(root, "nested")), ["ckpt"])
      assert.deepStrictEqual(yield* list(target), ["a.txt", "sub"])
      assert.strictEqual(yield* promise(() => readFile(join(target, "sub", "b.txt"), "utf8")), "B")
    }))

  it.effect("a failing or dying write leaves nothing behind", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const target = join(root, "ckpt")
      const failed = yield* Effect.flip(writeFolderAtomically(target, (temp) =>
        Effect.gen(function*() {
          yield* put(temp, "half.bin", "xx")
          return yield* Effect.fail("disk on fire" as const)
        })))
      assert.strictEqual(failed, "disk on fire")
      assert.deepStrictEqual(yield* list(root), [])
      const died = yield* Effect.exit(writeFolderAtomically(target, (temp) =>
        put(temp, "half.bin", "xx").pipe(Effect.andThen(Effect.die(new Error("bug"))))))
      assert.strictEqual(died._tag, "Failure")
      assert.deepStrictEqual(yield* list(root), [])
    }))

  it.effect("an existing target fails by default and is replaced on request", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const target = join(root, "ckpt")
      yield* writeFolderAtomically(target, (temp) => put(temp, "v", "1"))
      const error = yield* Effect.flip(writeFolderAtomically(target, (temp) => put(temp, "v", "2")))
      assert.strictEqual(error._tag, "TargetExists")
      assert.strictEqual(yield* promise(() => readFile(join(target, "v"), "utf8")), "1")
      yield* writeFolderAtomically(target, (temp) => put(temp, "w", "2"), { onExisting: "replace" })
      assert.deepStrictEqual(yield* list(target), ["w"])
      assert.deepStrictEqual(yield* list(root), ["ckpt"])
    }))

  it.effect("a failed replacement keeps the old folder", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const target = join(root, "ckpt")
      yield* writeFolderAtomically(target, (temp) => put(temp, "v", "1"))
      yield* Effect.flip(writeFolderAtomically(target, () => Effect.fail("no"), { onExisting: "replace" }))
      assert.strictEqual(yield* promise(() => readFile(join(target, "v"), "utf8")), "1")
      assert.deepStrictEqual(yield* list(root), ["ckpt"])
    }))
})

describe("recoverFolder", () => {
  it.effect("restores the previous copy after a crash between the two renames of a replacement", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const target = join(root, "ckpt")
      // What a kill -9 after `rename(target, aside)` leaves: the old copy aside, a complete or
      // partial new one, no target.
      yield* promise(() => mkdir(join(root, ".ckpt.previous-123-0badcafe")))
      yield* put(join(root, ".ckpt.previous-123-0badcafe"), "v", "old")
      yield* promise(() => mkdir(join(root, ".ckpt.partial-123-deadbeef")))
      yield* promise(() => mkdir(join(root, "other")))
      assert.strictEqual(yield* recoverFolder(target), "restored")
      assert.deepStrictEqual(yield* list(root), ["ckpt", "other"])
      assert.strictEqual(yield* promise(() => readFile(join(target, "v"), "utf8")), "old")
      assert.strictEqual(yield* recoverFolder(target), "intact")
      assert.strictEqual(yield* recoverFolder(join(root, "never")), "absent")
    }))

  it.effect("removes stale temporary folders next to an intact target", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const target = join(root, "ckpt")
      yield* promise(() => mkdir(target))
      yield* promise(() => mkdir(join(root, ".ckpt.partial-1-0123abcd")))
      yield* promise(() => mkdir(join(root, ".ckpt.previous-1-0123abcd")))
      // The temporary folder of another target whose name merely starts alike stays.
      yield* promise(() => mkdir(join(root, ".ckpt.partial-1.partial-2-0123abcd")))
      assert.strictEqual(yield* recoverFolder(target), "intact")
      assert.deepStrictEqual(yield* list(root), [".ckpt.partial-1.partial-2-0123abcd", "ckpt"])
    }))
})

describe("writeFileAtomically", () => {
  it.effect("writes and replaces a file without leaving temporary files", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const path = join(root, "manifest.json")
      yield* writeFileAtomically(path, "{\"a\":1}")
      yield* writeFileAtomically(path, new TextEncoder().encode("{\"a\":2}"))
      assert.strictEqual(yield* promise(() => readFile(path, "utf8")), "{\"a\":2}")
      assert.deepStrictEqual(yield* list(root), ["manifest.json"])
      const error = yield* Effect.flip(writeFileAtomically(join(root, "missing", "x.json"), "x"))
      assert.strictEqual(error._tag, "FileSystemError")
      assert.include(error.message, join(root, "missing"))
    }))
})
