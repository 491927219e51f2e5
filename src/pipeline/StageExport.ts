/**
 * A plan's `export: [onnx]`: every stage the run accepts is also written as an ONNX model
 * folder (what `simmer export --onnx` writes) to `<run>/onnx/<stage name>/`, beside the stage
 * folders rather than inside them: a stage folder's manifest lists the sha256 of every file it
 * holds and is verified on resume, so nothing may be added to it afterwards.
 *
 * Each export is written atomically (a temporary sibling renamed into place), so an existing
 * folder is a complete export and is skipped: a resumed run neither fails on nor redoes one.
 */
import { basename, join } from "node:path"
import { Effect, Schema } from "effect"
import { pathExists } from "../io/AtomicWrite.ts"
import type { RunEvent } from "../io/RunEvent.ts"
import { exportOnnx } from "../onnx/OnnxExport.ts"
import type { ExportFormat } from "./Plan.ts"

/** The folder of a run that holds its stages' ONNX exports. */
export const onnxFolderName = "onnx"

/** Where stage `checkpoint` (a run-relative path such as `stages/ptl-001`) is exported as ONNX. */
export const onnxExportDir = (runDir: string, checkpoint: string) => join(runDir, onnxFolderName, basename(checkpoint))

/**
 * An accepted stage could not be exported. The run fails with it rather than going on without
 * the export the plan asked for: the stage itself is saved and accepted before the export
 * starts, so no compression is lost, and `simmer resume` exports it again before continuing.
 */
export class StageExportFailed extends Schema.TaggedError<StageExportFailed>()("StageExportFailed", {
  stage: Schema.String,
  path: Schema.String,
  message: Schema.String
}) {}

/** Exports accepted stage `checkpoint` of the run in `runDir` in each format, unless already there. */
export const exportStage = Effect.fn("StageExport.exportStage")(function*(
  runDir: string,
  checkpoint: string,
  formats: ReadonlyArray<ExportFormat>
) {
  if (!formats.includes("onnx")) return
  const target = onnxExportDir(runDir, checkpoint)
  const fail = (error: { readonly message: string }) =>
    new StageExportFailed({
      stage: checkpoint,
      path: target,
      message: `Exporting the accepted stage ${checkpoint} as ONNX to ${target} failed: ${error.message} ` +
        `The stage is saved; \`simmer resume ${runDir}\` exports it again, or \`simmer export ${join(runDir, checkpoint)} --onnx <dir>\` does it alone.`
    })
  if (yield* Effect.mapError(pathExists(target), fail)) return
  // Scoped: the checkpoint's shard files are closed once its export is written.
  yield* Effect.mapError(Effect.scoped(exportOnnx(join(runDir, checkpoint), target)), fail)
  yield* Effect.logInfo(`exported ${checkpoint} as ONNX to ${target}`)
})

/**
 * Exports every stage the event log records as accepted that has no export yet: on resume, the
 * stages accepted before a crash that came between logging the acceptance and its export.
 */
export const exportLoggedStages = (runDir: string, events: ReadonlyArray<RunEvent>, formats: ReadonlyArray<ExportFormat>) =>
  Effect.forEach(
    events.filter((e) => e.phase === "accepted" && e.checkpoint !== undefined),
    (e) => exportStage(runDir, e.checkpoint!, formats),
    { discard: true }
  )
