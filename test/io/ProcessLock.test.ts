import { spawnSync } from "node:child_process"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { LockingProcess, takeProcessLock } from "../../src/io/ProcessLock.ts"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-lock-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const errors = { held: (_: string, holder: string) => `held by ${holder}`, failed: (_: string, cause: string) => `failed: ${cause}` }

describe("process locks", () => {
  it.effect("record the locking process the caller names, and refuse a second taker with it", () =>
    Effect.scoped(Effect.gen(function*() {
      const path = join(yield* tempDir, "lock")
      yield* takeProcessLock(path, errors).pipe(Effect.provideService(LockingProcess, { pid: process.pid, command: "run plan.yaml" }))
      const written = JSON.parse(yield* Effect.promise(() => readFile(path, "utf8")))
      expect(written).toMatchObject({ pid: process.pid, host: hostname(), command: "run plan.yaml" })
      const refused = yield* Effect.flip(Effect.scoped(takeProcessLock(path, errors)))
      expect(refused).toMatch(new RegExp(`^held by pid ${process.pid} on .*\\(run plan\\.yaml\\)$`))
    })))

  it.effect("take over a lock whose process is gone, and remove it when the scope closes", () =>
    Effect.scoped(Effect.gen(function*() {
      const path = join(yield* tempDir, "lock")
      const gone = spawnSync("true").pid
      yield* Effect.promise(() =>
        writeFile(path, JSON.stringify({ pid: gone, host: hostname(), since: "then", command: "crashed" }) + "\n")
      )
      const holder = yield* Effect.scoped(Effect.gen(function*() {
        yield* takeProcessLock(path, errors).pipe(Effect.provideService(LockingProcess, { pid: process.pid, command: "resume" }))
        return JSON.parse(yield* Effect.promise(() => readFile(path, "utf8"))).command
      }))
      expect(holder).toBe("resume")
      const left = yield* Effect.promise(() => readFile(path, "utf8").then(() => true, () => false))
      expect(left).toBe(false)
    })))
})
