/**
 * An ONNX Runtime session on the decoder graph of a model description, its weights read once
 * through `read` (float32, internal orientation), from wherever they live: a checkpoint's
 * shards (CheckpointSession.ts) or the tfjs tensors of a model in memory (ModelSession.ts).
 * Under the protobuf limit the model stays in memory; beyond it, it goes through a temporary
 * folder as external data, one tensor at a time. The session (and that folder) live until the
 * scope closes.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { weightBytes } from "../model/Footprint.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { decoderGraph, type DecoderGraphOptions } from "./DecoderGraph.ts"
import { encodeInline, modelFileName, needsExternalData, writeModelFiles } from "./OnnxFile.ts"
import { openDecoderSession } from "./OrtDecoder.ts"

/**
 * Host memory a session on a model of `config` holds at its peak, beside the weights' own
 * tensors: the encoded model and the session's copy of the weights while it is built (a 239 MiB
 * model measured 2.2× above the loaded model), the session's copy afterwards. Through a
 * temporary folder (beyond the protobuf limit) the session still ends with its own copy.
 */
export const ortSessionBytes = (config: ModelConfig): number => 2.25 * weightBytes(config)

export const openGraphSession = Effect.fn("GraphSession.open")(function*<E>(
  config: ModelConfig,
  read: (name: string) => Effect.Effect<Float32Array, E>,
  options: DecoderGraphOptions = {},
  /** ONNX Runtime's intra-op threads; default its own (one per physical core). */
  threads?: number
) {
  const graph = decoderGraph(config, options)
  const open = needsExternalData(graph.weights)
    ? Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-onnx-"))),
        (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
      )
      yield* writeModelFiles(dir, graph, read)
      return yield* Effect.promise(() => openDecoderSession(join(dir, modelFileName), { threads }))
    })
    : Effect.gen(function*() {
      const values = new Map<string, Float32Array>()
      for (const w of graph.weights) values.set(w.name, yield* read(w.name))
      const bytes = encodeInline(graph, (name) => values.get(name)!)
      values.clear() // the encoded bytes hold them now: one copy fewer while the session parses them
      return yield* Effect.promise(() => openDecoderSession(bytes, { threads }))
    })
  return yield* Effect.acquireRelease(open, (session) => Effect.promise(() => session.release()))
})
