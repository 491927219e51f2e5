/**
 * A run's accepted checkpoints as the API lists them: every stage the event log says was
 * accepted, with the files and sha256 of its manifest, marked final when a strategy finished on
 * it. A download names a stage and a file; both must be in this list, so a request can only
 * ever reach a file a manifest vouches for, never another path.
 */
import { readFile } from "node:fs/promises"
import { basename, join } from "node:path"
import { Effect, Option, Schema } from "effect"
import { Manifest, manifestFileName } from "../io/Manifest.ts"
import { eventsFileName } from "../io/RunFolder.ts"
import type { RunEvent } from "../io/RunEvent.ts"
import { readEvents } from "../io/EventLog.ts"
import type { Checkpoint } from "./Api.ts"

const decodeManifest = Schema.decodeUnknownOption(Schema.fromJsonString(Manifest))

/** The accepted checkpoints of the run in `dir`, oldest first (stages without a readable manifest are left out). */
export const listCheckpoints = (dir: string): Effect.Effect<ReadonlyArray<Checkpoint>> =>
  Effect.gen(function*() {
    const events = yield* readEvents(join(dir, eventsFileName)).pipe(Effect.orElseSucceed((): Array<RunEvent> => []))
    const finals = new Set(events.filter((e) => e.phase === "finished" && e.checkpoint !== undefined).map((e) => e.checkpoint!))
    const accepted = new Map<string, RunEvent>()
    for (const e of events) if (e.phase === "accepted" && e.checkpoint !== undefined && !accepted.has(e.checkpoint)) accepted.set(e.checkpoint, e)
    const checkpoints: Array<Checkpoint> = []
    for (const [stage, event] of accepted) {
      const text = yield* Effect.promise(() => readFile(join(dir, stage, manifestFileName), "utf8").catch(() => ""))
      const manifest = decodeManifest(text)
      if (Option.isNone(manifest)) continue
      checkpoints.push({
        stage: basename(stage),
        strategy: event.strategy,
        iteration: event.iteration,
        final: finals.has(stage),
        files: Object.entries(manifest.value.files).map(([name, file]) => ({ name, bytes: file.bytes, sha256: file.sha256 }))
      })
    }
    return checkpoints
  })

/** The path and manifest entry of `file` in `stage`, when the run lists them. */
export const checkpointFile = (dir: string, stage: string, file: string) =>
  Effect.map(listCheckpoints(dir), (checkpoints) => {
    const entry = checkpoints.find((c) => c.stage === stage)?.files.find((f) => f.name === file)
    return entry === undefined ? undefined : { path: join(dir, "stages", stage, file), ...entry }
  })
