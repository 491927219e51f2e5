/**
 * An ONNX Runtime session on the decoder graph of a model description, its weights read once
 * through `read` (float32, internal orientation), from wherever they live: a checkpoint's
 * shards (CheckpointSession.ts) or the tfjs tensors of a model in memory (ModelSession.ts).
 *
 * The weights always go through a temporary folder as external data, one tensor at a time, and
 * the session opens the file by path: ONNX Runtime maps external data into memory and uses it
 * where it lies, so the session holds no copy of its own beside the file's pages (which the
 * kernel can drop and read back). Model bytes with the weights inline were parsed and copied:
 * at the qwen2.5-0.5b shape the process peaked 3.2× the weights above them. The session (and
 * that folder) live until the scope closes.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { weightBytes } from "../model/Footprint.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { decoderGraph, type DecoderGraphOptions, sessionGraphOptions } from "./DecoderGraph.ts"
import { modelFileName, writeModelFiles } from "./OnnxFile.ts"
import { openDecoderSession } from "./OrtDecoder.ts"

/**
 * Host memory a session on a model of `config` holds beside the weights' own tensors: ONNX
 * Runtime's pre-packed copies of the MatMul weights (about the weights again; packing makes
 * decoding's few-row products twice as fast) and a tensor being written, with a quarter more
 * for its working buffers. The mapped file's pages are not counted: the kernel reclaims them.
 */
export const ortSessionBytes = (config: ModelConfig): number => 1.25 * weightBytes(config)

export const openGraphSession = Effect.fn("GraphSession.open")(function*<E>(
  config: ModelConfig,
  read: (name: string) => Effect.Effect<Float32Array, E>,
  options: DecoderGraphOptions = {},
  /** ONNX Runtime's intra-op threads; default its own (one per physical core). */
  threads?: number
) {
  // Only ONNX Runtime reads this file.
  const graph = decoderGraph(config, { ...sessionGraphOptions, ...options })
  const open = Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-onnx-"))),
      (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
    )
    yield* writeModelFiles(dir, graph, read, { externalData: "always" })
    return yield* Effect.promise(() => openDecoderSession(join(dir, modelFileName), { threads }))
  })
  return yield* Effect.acquireRelease(open, (session) => Effect.promise(() => session.release()))
})
