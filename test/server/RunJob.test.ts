import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { writeRunInfo } from "../../src/io/RunInfo.ts"
import { readRunJob } from "../../src/server/RunJob.ts"
import type { RunId } from "../../src/services/JobStore.ts"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-runjob-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

describe("readRunJob", () => {
  it.effect("a run's job whose plan cannot be read is a RunFolderUnreadable with the plan's message", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* tempDir
      yield* writeRunInfo(dir, { modelPath: "/models/base", createdAt: "2026-12-07T00:00:00Z" })
      const error = yield* Effect.flip(readRunJob("20261207-000000-abcdef" as RunId, dir))
      expect(error._tag).toBe("RunFolderUnreadable")
      expect(error.dir).toBe(dir)
      expect(error.message).toContain("plan.yaml")
    })))
})
