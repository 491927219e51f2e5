/**
 * A checkpoint folder as an ONNX decoder: its graph with every tensor read once from the
 * shards (float32, internal orientation), and an ONNX Runtime session on it for the commands
 * that run inference there (`simmer eval --inference ort`). The session lives until the scope
 * closes; beyond the protobuf limit the model goes through a temporary folder (external data).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import type { LazyCheckpoint } from "../io/Checkpoint.ts"
import { paramSpecs } from "../model/Params.ts"
import { decoderGraph } from "./DecoderGraph.ts"
import { encodeModel, externalDataFileName, modelFileName, needsExternalData } from "./OnnxFile.ts"
import { openDecoderSession } from "./OrtDecoder.ts"

export const checkpointGraph = Effect.fnUntraced(function*(checkpoint: LazyCheckpoint) {
  const values = new Map<string, Float32Array>()
  for (const spec of paramSpecs(checkpoint.config)) values.set(spec.name, yield* checkpoint.readInternal(spec.name))
  return decoderGraph(checkpoint.config, (spec) => values.get(spec.name)!)
})

export const openCheckpointSession = Effect.fn("CheckpointSession.open")(function*(checkpoint: LazyCheckpoint) {
  const graph = yield* checkpointGraph(checkpoint)
  const open = needsExternalData(graph.weights)
    ? Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-onnx-"))),
        (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
      )
      const encoded = encodeModel(graph, { externalData: "always" })
      yield* Effect.promise(async () => {
        await writeFile(join(dir, modelFileName), encoded.model)
        await writeFile(join(dir, externalDataFileName), encoded.externalData ?? [])
      })
      return yield* Effect.promise(() => openDecoderSession(join(dir, modelFileName)))
    })
    : Effect.promise(() => openDecoderSession(encodeModel(graph).model))
  return yield* Effect.acquireRelease(open, (session) => Effect.promise(() => session.release()))
})
