/**
 * A plan's `export: [onnx]`: every stage the run accepts (the original, each iteration, each
 * baseline) lands in `<run>/onnx/<stage>/` as an ONNX model whose logits in a fresh ONNX Runtime
 * session equal the stage checkpoint's in simmer (1e-4), while the stage folders keep exactly
 * what their manifests list; a resumed run exports what is missing and leaves the rest alone;
 * a failed export fails the run with a `failed` event that says so.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Stream } from "effect"
import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { readEvents } from "../../src/io/EventLog.ts"
import { verifyManifest } from "../../src/io/Manifest.ts"
import { disposeParams } from "../../src/model/Params.ts"
import { openDecoderSession, runDecoder } from "../../src/onnx/OrtDecoder.ts"
import { parsePlan } from "../../src/pipeline/Plan.ts"
import { runUpdates } from "../../src/pipeline/Run.ts"
import { Datasets } from "../../src/services/Datasets.ts"
import { DeviceMemory, makeDeviceMemory } from "../../src/services/DeviceMemory.ts"
import { RunStore } from "../../src/services/RunStore.ts"
import { localGradients, maxAbsDiff, planReward, useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { tinyPlan } from "../helpers/daemon.ts"
import { tempDir } from "../io/_support.ts"
import { tfjsLogits } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

const testMemory = Layer.effect(DeviceMemory, makeDeviceMemory("host memory", 8 * 2 ** 30))

/** Runs (or resumes) the tiny plan with `export: [onnx]` in `dir`; the exit, and the event log afterwards. */
const runExporting = (dir: string, model: string) =>
  Effect.gen(function*() {
    const plan = yield* parsePlan(`${tinyPlan(model, { iterations: 2 })}baselines: [prune-only]\nexport: [onnx]\n`, "plan.yaml")
    const exit = yield* Effect.exit(Stream.runDrain(runUpdates({ plan, modelPath: model })).pipe(
      Effect.provide(Layer.mergeAll(RunStore.layerFolder(dir), Datasets.layer, localGradients, testMemory, planReward(plan)))
    ))
    return { exit, events: yield* readEvents(join(dir, "events.ndjson")) }
  })

/** The export of `stage` in a fresh ONNX Runtime session gives the stage checkpoint's logits in simmer. */
const checkExport = (runDir: string, stage: string) =>
  Effect.gen(function*() {
    const model = yield* loadCheckpoint(join(runDir, stage))
    const session = yield* Effect.promise(() => openDecoderSession(join(runDir, "onnx", stage.replace("stages/", ""), "model.onnx")))
    const ids = [[3, 1, 7, 2, 9, 4, 1], [5, 5, 2, 8, 6, 10, 3]]
    const ort = yield* Effect.promise(() => runDecoder(session, model.config, { ids }))
    expect(maxAbsDiff(ort.logits, tfjsLogits(model, ids))).toBeLessThan(1e-4)
    yield* Effect.promise(() => session.release())
    disposeParams(model.config, model.params)
  })

const modifiedAt = (path: string) => Effect.promise(() => stat(path)).pipe(Effect.map((s) => s.mtimeMs))

describe("a plan with export: [onnx]", () => {
  it.live("exports every accepted stage beside the stages, each giving its checkpoint's logits; a resume adds only what is missing", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      const runDir = join(tmp, "run")
      yield* writeTinyCheckpoint(model)
      const { exit, events } = yield* runExporting(runDir, model)
      expect(Exit.isSuccess(exit)).toBe(true)
      const stages = events.filter((e) => e.phase === "accepted").map((e) => e.checkpoint!)
      // The original, both loop iterations, and the baseline's stage.
      expect(stages).toEqual(["stages/ptl-000", "stages/ptl-001", "stages/ptl-002", "stages/prune-only-001"])
      expect((yield* Effect.promise(() => readdir(join(runDir, "onnx")))).sort()).toEqual(["prune-only-001", "ptl-000", "ptl-001", "ptl-002"])
      for (const stage of stages) {
        yield* checkExport(runDir, stage)
        // Nothing was added inside the stage folder: its manifest still verifies, and resume reads it.
        yield* verifyManifest(join(runDir, stage))
      }

      // A resume of the finished run exports a missing stage again and leaves the others as they are.
      const kept = yield* modifiedAt(join(runDir, "onnx", "ptl-002", "model.onnx"))
      yield* Effect.promise(() => rm(join(runDir, "onnx", "ptl-001"), { recursive: true }))
      const resumed = yield* runExporting(runDir, model)
      expect(Exit.isSuccess(resumed.exit)).toBe(true)
      yield* checkExport(runDir, "stages/ptl-001")
      expect(yield* modifiedAt(join(runDir, "onnx", "ptl-002", "model.onnx"))).toBe(kept)
    }), 240_000)

  it.live("fails the run when a stage cannot be exported, with a failed event that says which and why", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      const runDir = join(tmp, "run")
      yield* writeTinyCheckpoint(model)
      // A file where the exports' folder should be: the original's export cannot be written.
      yield* Effect.promise(async () => {
        await mkdir(runDir, { recursive: true })
        await writeFile(join(runDir, "onnx"), "not a folder")
      })
      const { exit, events } = yield* runExporting(runDir, model)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(JSON.stringify(exit)).toContain("StageExportFailed")
      const failed = events.find((e) => e.phase === "failed")
      expect(failed?.message).toContain("Exporting the accepted stage stages/ptl-000 as ONNX")
      // The stage was saved and accepted before its export: nothing of the run is lost.
      expect(events.some((e) => e.phase === "accepted" && e.checkpoint === "stages/ptl-000")).toBe(true)
    }), 120_000)
})
