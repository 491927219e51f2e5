/**
 * kill -9 at arbitrary instants while checkpoints are being written: the accepted pointer
 * always names a complete checkpoint whose manifest verifies and which loads.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { disposeParams } from "../../src/model/Params.ts"
import { RunStore } from "../../src/services/RunStore.ts"
import { useBackend } from "../helpers/backend.ts"
import { tempDir } from "../io/_support.ts"

beforeAll(() => useBackend("cpu"))

/** Starts the writer, waits until it has accepted two checkpoints, kills it with SIGKILL after `delayMs`. */
const writeAndKill = (dir: string, delayMs: number) =>
  Effect.promise(() =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [join(import.meta.dirname, "crash-writer.ts"), dir], { stdio: ["ignore", "pipe", "inherit"] })
      child.stdout.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("ready")) setTimeout(() => child.kill("SIGKILL"), delayMs)
      })
      child.on("exit", (_code, signal) => (signal === "SIGKILL" ? resolve() : reject(new Error(`writer exited without being killed (${signal})`))))
    })
  )

describe("kill -9 during checkpoint writes", () => {
  it.live("leaves the accepted checkpoint intact every time", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      for (const delayMs of [0, 37, 150, 420]) {
        yield* writeAndKill(dir, delayMs)
        const pointer = yield* Effect.gen(function*() {
          const store = yield* RunStore
          const accepted = (yield* store.accepted).get("ptl")
          expect(accepted).toBeDefined()
          const model = yield* store.loadStage(accepted!.stage) // verifies the manifest first
          disposeParams(model.config, model.params)
          return accepted!
        }).pipe(
          // The killed writer's lock is left behind; a new store takes it over.
          Effect.provide(RunStore.layerFolder(dir))
        )
        expect(pointer.iteration).toBeGreaterThanOrEqual(1)
      }
    }), 120_000)
})
