/**
 * Where a model's weights come from when it runs block by block: the embedding rows a batch
 * needs, one decoder block's weights at a time, the final norm, and the LM head in chunks of
 * vocabulary rows. Every tensor it returns is the caller's to dispose.
 *
 * Two sources: a model already in memory (`residentSource`: tensors handed out as clones, which
 * share the data), and a checkpoint read lazily from its shards (`checkpointSource`: each block
 * read by offset, BF16 / F16 decoded to float32 on the fly, uploaded only after a check that it
 * fits the device, and released after use), so a model larger than the device runs with one
 * block's weights resident and peak memory that does not grow with depth.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { LazyCheckpoint } from "../io/Checkpoint.ts"
import type { CorruptCheckpoint, FileSystemError } from "../io/Errors.ts"
import type { DeviceRoom } from "./DeviceRoom.ts"
import type { MemoryBudgetExceeded } from "./Footprint.ts"
import type { ModelConfig } from "./ModelConfig.ts"
import { assembleLayer, type LayerParams, layerSpecs, layerTensors, type Params } from "./Params.ts"

export interface WeightSource<E = never> {
  readonly config: ModelConfig
  /** The device budget the work on these weights checks each large upload against. */
  readonly room: DeviceRoom
  /** Embedding rows of `ids`: [n, D]. */
  readonly embed: (ids: Int32Array) => Effect.Effect<tf.Tensor2D, E>
  /** Decoder block i's weights (internal orientation). Dispose with `layerTensors`. */
  readonly layer: (i: number) => Effect.Effect<LayerParams, E>
  /** The final RMSNorm weight [D]. */
  readonly norm: Effect.Effect<tf.Tensor1D, E>
  /** LM head rows (vocabulary entries) [first, first + count) as [count, D]: logits = h · rowsᵀ. */
  readonly headRows: (first: number, count: number) => Effect.Effect<tf.Tensor2D, E>
  /** LM head rows of the given ids: [n, D]. */
  readonly headGather: (ids: Int32Array) => Effect.Effect<tf.Tensor2D, E>
}

/** Errors of reading a checkpoint lazily. */
export type LazyWeightError = CorruptCheckpoint | FileSystemError | MemoryBudgetExceeded

export const releaseLayer = (layer: LayerParams): void => {
  for (const t of layerTensors(layer)) t.dispose()
}

/** A model in memory as a source; nothing it hands out owns new data (clones share it). */
export const residentSource = (config: ModelConfig, params: Params, room: DeviceRoom): WeightSource => {
  const clone = <T extends tf.Tensor>(t: T) => tf.clone(t) as T
  const linear = (l: LayerParams["q"]) => (l.b === undefined ? { w: clone(l.w) } : { w: clone(l.w), b: clone(l.b) })
  const ids1d = (ids: Int32Array) => tf.tensor1d(ids, "int32")
  return {
    config,
    room,
    embed: (ids) => Effect.sync(() => tf.tidy(() => tf.gather(params.embed, ids1d(ids)) as tf.Tensor2D)),
    layer: (i) =>
      Effect.sync(() => {
        const p = params.layers[i]
        return {
          inputNorm: clone(p.inputNorm),
          q: linear(p.q),
          k: linear(p.k),
          v: linear(p.v),
          o: linear(p.o),
          postNorm: clone(p.postNorm),
          gate: linear(p.gate),
          up: linear(p.up),
          down: linear(p.down)
        }
      }),
    norm: Effect.sync(() => clone(params.norm)),
    headRows: (first, count) =>
      Effect.sync(() =>
        tf.tidy(() =>
          params.lmHead === undefined
            ? tf.slice(params.embed, [first, 0], [count, config.hiddenSize]) as tf.Tensor2D
            : tf.transpose(tf.slice(params.lmHead.w, [0, first], [config.hiddenSize, count])) as tf.Tensor2D
        )
      ),
    headGather: (ids) =>
      Effect.sync(() =>
        tf.tidy(() =>
          params.lmHead === undefined
            ? tf.gather(params.embed, ids1d(ids)) as tf.Tensor2D
            : tf.transpose(tf.gather(params.lmHead.w, ids1d(ids), 1)) as tf.Tensor2D
        )
      )
  }
}

const layerAdvice =
  "Even one decoder block does not fit: use the tensorflow backend (--backend tensorflow) for a model this wide."

/**
 * A checkpoint as a source: each request reads its tensors by offset and uploads them after
 * checking they fit (MemoryBudgetExceeded otherwise). Rows of the embedding or head are read
 * one distinct id at a time, so a batch's embedding costs its distinct tokens, not the vocabulary.
 */
export const checkpointSource = (checkpoint: LazyCheckpoint, room: DeviceRoom): WeightSource<LazyWeightError> => {
  const { config } = checkpoint
  const D = config.hiddenSize
  const headName = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"
  const upload = (stage: string, data: Float32Array, shape: Array<number>) =>
    room.ensure(stage, data.byteLength, layerAdvice).pipe(Effect.map(() => tf.tensor(data, shape, "float32")))
  const gatherRows = (name: string, what: string) => (ids: Int32Array) =>
    Effect.gen(function*() {
      const distinct = [...new Set(ids)]
      const rows = new Map<number, Float32Array>()
      for (const id of distinct) rows.set(id, yield* checkpoint.readRows(name, id, 1))
      const out = new Float32Array(ids.length * D)
      ids.forEach((id, r) => out.set(rows.get(id)!, r * D))
      return (yield* upload(what, out, [ids.length, D])) as tf.Tensor2D
    })
  return {
    config,
    room,
    embed: gatherRows("model.embed_tokens.weight", "the embedding rows of a batch"),
    layer: (i) =>
      Effect.gen(function*() {
        const tensors = new Map<string, tf.Tensor>()
        const specs = layerSpecs(config, i)
        const bytes = specs.reduce((sum, s) => sum + s.shape.reduce((a, b) => a * b, 1) * 4, 0)
        yield* room.ensure(`decoder block ${i}`, bytes, layerAdvice)
        yield* Effect.forEach(specs, (spec) =>
          checkpoint.readInternal(spec.name).pipe(Effect.map((data) => {
            tensors.set(spec.name, tf.tensor(data, spec.transposed ? [spec.shape[1], spec.shape[0]] : [...spec.shape], "float32"))
          })), { discard: true }).pipe(Effect.onError(() => Effect.sync(() => tensors.forEach((t) => t.dispose()))))
        return assembleLayer(config, i, (name) => tensors.get(name)!)
      }),
    norm: checkpoint.read("model.norm.weight").pipe(Effect.flatMap((data) => upload("the final norm", data, [D]))) as Effect.Effect<
      tf.Tensor1D,
      LazyWeightError
    >,
    headRows: (first, count) =>
      checkpoint.readRows(headName, first, count).pipe(
        Effect.flatMap((data) => upload("a chunk of the LM head", data, [count, D]))
      ) as Effect.Effect<tf.Tensor2D, LazyWeightError>,
    headGather: gatherRows(headName, "the LM head rows of the targets")
  }
}
