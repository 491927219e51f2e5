/**
 * The fence on a real Postgres: taking a run over raises its epoch, and a run store holding an
 * older token is refused before it writes anything (the event log keeps only the new owner's
 * lines); the fence rides out a Postgres restart.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Layer, Redacted } from "effect"
import { postgresLayer } from "../../src/cluster/ClusterLayer.ts"
import { createRunFolder } from "../../src/io/RunFolder.ts"
import { FencedOut, RunFence } from "../../src/services/RunFence.ts"
import { RunStore } from "../../src/services/RunStore.ts"
import { loggedEvents } from "../helpers/daemonProcess.ts"
import { type Postgres, startPostgres } from "../helpers/postgres.ts"

let pg: Postgres
let tmp: string

const event = { strategy: "ptl", iteration: 1, attempt: 0, phase: "pruned", parameters: { total: 10, nonEmbedding: 8 } } as const

describe("RunFence (Postgres)", () => {
  beforeAll(async () => {
    pg = await startPostgres()
    tmp = mkdtempSync(join(tmpdir(), "simmer-fence-"))
  }, 60_000)
  afterAll(() => {
    pg?.destroy()
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true })
  })

  const fence = () => RunFence.layerPostgres.pipe(Layer.provide(postgresLayer({ url: Redacted.make(pg.url) })))

  it.live("a takeover raises the epoch; the old holder's writes are refused, the new holder's land", () =>
    Effect.gen(function*() {
      const dir = join(tmp, "run-a")
      yield* createRunFolder(dir, "model: base\n", { modelPath: "/nowhere", createdAt: new Date().toISOString() })
      const runs = yield* RunFence
      const first = yield* runs.acquire("run-a", "runner-1:1")
      const second = yield* runs.acquire("run-a", "runner-2:2")
      expect(second.epoch).toBe(first.epoch + 1)
      yield* runs.check(second)
      const refused = yield* runs.check(first).pipe(Effect.flip)
      expect(refused).toBeInstanceOf(FencedOut)
      expect(refused.message).toBe(
        `Run run-a moved to runner-2:2 (fencing epoch ${second.epoch}); runner-1:1 held epoch ${first.epoch} and may no longer write into it, so this write was refused.`
      )

      const storeOf = (token: typeof first) => RunStore.layerFenced(dir, token).pipe(Layer.provide(Layer.succeed(RunFence, runs)))
      const stale = yield* Effect.gen(function*() {
        const store = yield* RunStore
        return yield* store.appendEvent(event).pipe(Effect.exit)
      }).pipe(Effect.provide(storeOf(first)))
      expect(Exit.isFailure(stale) && Cause.squash(stale.cause)).toBeInstanceOf(FencedOut)
      expect(loggedEvents(dir)).toEqual([])

      yield* Effect.gen(function*() {
        const store = yield* RunStore
        yield* store.appendEvent(event)
      }).pipe(Effect.provide(storeOf(second)))
      expect(loggedEvents(dir).map((e) => e.phase)).toEqual(["pruned"])
    }).pipe(Effect.provide(fence())), 60_000)

  it.live("checks wait out a Postgres restart instead of failing the run", () =>
    Effect.gen(function*() {
      const runs = yield* RunFence
      const token = yield* runs.acquire("run-b", "runner-1:1")
      pg.stop()
      setTimeout(() => pg.start(), 1500)
      yield* runs.check(token)
    }).pipe(Effect.provide(fence())), 60_000)
})
