/**
 * An ONNX Runtime session on a checkpoint folder's decoder graph, for the commands that run
 * inference there (`simmer eval --inference ort`): every tensor read once from the shards
 * (float32, internal orientation). Under the protobuf limit the model stays in memory; beyond
 * it, it goes through a temporary folder as external data, one tensor at a time. The session
 * (and that folder) live until the scope closes.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import type { LazyCheckpoint } from "../io/Checkpoint.ts"
import { decoderGraph } from "./DecoderGraph.ts"
import { encodeInline, modelFileName, needsExternalData, writeModelFiles } from "./OnnxFile.ts"
import { openDecoderSession } from "./OrtDecoder.ts"

export const openCheckpointSession = Effect.fn("CheckpointSession.open")(function*(checkpoint: LazyCheckpoint) {
  const graph = decoderGraph(checkpoint.config)
  const open = needsExternalData(graph.weights)
    ? Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-onnx-"))),
        (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
      )
      yield* writeModelFiles(dir, graph, checkpoint.readInternal)
      return yield* Effect.promise(() => openDecoderSession(join(dir, modelFileName)))
    })
    : Effect.gen(function*() {
      const values = new Map<string, Float32Array>()
      for (const w of graph.weights) values.set(w.name, yield* checkpoint.readInternal(w.name))
      return yield* Effect.promise(() => openDecoderSession(encodeInline(graph, (name) => values.get(name)!)))
    })
  return yield* Effect.acquireRelease(open, (session) => Effect.promise(() => session.release()))
})
