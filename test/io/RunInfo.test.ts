import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readRunInfo, RunFolderUnreadable, writeRunInfo } from "../../src/io/RunInfo.ts"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-runinfo-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

describe("reading a run folder back", () => {
  it.effect("run.json reads back as written", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* tempDir
      const info = { modelPath: "/models/base", createdAt: "2026-12-07T00:00:00Z" }
      yield* writeRunInfo(dir, info)
      expect(yield* readRunInfo(dir)).toEqual(info)
    })))

  it.effect("a missing or invalid run.json is a RunFolderUnreadable naming the file", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* tempDir
      const missing = yield* Effect.flip(readRunInfo(dir))
      expect(missing).toBeInstanceOf(RunFolderUnreadable)
      expect(missing.dir).toBe(dir)
      expect(missing.message).toMatch(new RegExp(`^cannot read ${join(dir, "run.json")}: `))

      yield* Effect.promise(() => writeFile(join(dir, "run.json"), "{\"createdAt\": 3}"))
      const invalid = yield* Effect.flip(readRunInfo(dir))
      expect(invalid.message).toBe(`${join(dir, "run.json")} is not a valid run.json`)
    })))
})
