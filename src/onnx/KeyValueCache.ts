/**
 * The keys and values of the positions a decoding has run, fed to its next step, in the layout
 * of the session's graph (AttentionGraph.ts's CacheLayout):
 * - `optimum` (exported files): each step returns the whole present cache, fed back as is.
 * - `appended` (the sessions simmer opens): each step returns its own positions' keys and
 *   values only; they are copied onto the end of one buffer per layer and tensor, positions
 *   first, and the filled part of each buffer is fed without a copy.
 *
 * A cache is extended once: the cache a step returns shares its buffers with the one it was
 * given, so an older cache must not be extended again.
 */
import * as ort from "onnxruntime-node"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { decoderInputs, decoderOutputs } from "./DecoderIo.ts"

export interface KeyValueCache {
  /** Positions held. */
  readonly length: number
  /** The past_key_values.* inputs of the next step. */
  readonly feeds: Readonly<Record<string, ort.Tensor>>
  /** The outputs a step must return to extend this cache. */
  readonly fetches: ReadonlyArray<string>
  /** The cache after a step that returned `outputs`. */
  readonly extend: (outputs: Readonly<Record<string, ort.Tensor>>) => KeyValueCache
}

/** Whether a session's graph returns whole caches or only each step's own positions. */
const appends = (session: ort.InferenceSession): boolean => session.outputNames.includes(decoderOutputs.newKey(0))

/** An empty cache for a batch of `batch` rows; `capacity` positions are allocated at once where the layout allows (more grow it). */
export const emptyCache = (session: ort.InferenceSession, config: ModelConfig, batch: number, capacity = 0): KeyValueCache =>
  appends(session) ? appendedCache(config, batch, capacity) : optimumCache(config, batch)

/** The past inputs, key then value of each layer: the order of both layouts' tensors below. */
const pastInputs = (config: ModelConfig) => config.layers.flatMap((_, i) => [decoderInputs.pastKey(i), decoderInputs.pastValue(i)])

const optimumCache = (config: ModelConfig, batch: number): KeyValueCache => {
  const inputs = pastInputs(config)
  const fetches = config.layers.flatMap((_, i) => [decoderOutputs.presentKey(i), decoderOutputs.presentValue(i)])
  const make = (length: number, tensors: ReadonlyArray<ort.Tensor>): KeyValueCache => ({
    length,
    feeds: Object.fromEntries(inputs.map((name, j) => [name, tensors[j]])),
    fetches,
    extend: (outputs) => make(outputs[fetches[0]].dims[2], fetches.map((name) => outputs[name]))
  })
  const empty = config.layers.flatMap((layer) => {
    const tensor = () => new ort.Tensor("float32", new Float32Array(0), [batch, layer.numKeyValueHeads, 0, config.headDim])
    return [tensor(), tensor()]
  })
  return make(0, empty)
}

const appendedCache = (config: ModelConfig, batch: number, capacity: number): KeyValueCache => {
  const inputs = pastInputs(config)
  const fetches = config.layers.flatMap((_, i) => [decoderOutputs.newKey(i), decoderOutputs.newValue(i)])
  // Each buffer's position: [B, KV, hd], and its size in floats.
  const positionShapes = config.layers.flatMap((layer) => {
    const shape = [batch, layer.numKeyValueHeads, config.headDim]
    return [shape, shape]
  })
  const rowSizes = positionShapes.map(([b, kv, hd]) => b * kv * hd)
  const dims = (j: number, length: number) => [length, ...positionShapes[j]]
  // Empty for a pass that keeps no cache (perplexity, scores); the first extension allocates.
  let buffers = rowSizes.map((size) => new Float32Array(size * capacity))
  const make = (length: number): KeyValueCache => ({
    length,
    feeds: Object.fromEntries(inputs.map((name, j) => [name, new ort.Tensor("float32", buffers[j].subarray(0, length * rowSizes[j]), dims(j, length))])),
    fetches,
    extend: (outputs) => {
      const added = outputs[fetches[0]].dims[0]
      const needed = length + added
      if (needed * rowSizes[0] > buffers[0].length) {
        buffers = buffers.map((old, j) => {
          const grown = new Float32Array(rowSizes[j] * Math.max(needed, 2 * old.length / rowSizes[j]))
          grown.set(old.subarray(0, length * rowSizes[j]))
          return grown
        })
      }
      fetches.forEach((name, j) => buffers[j].set(outputs[name].data as Float32Array, length * rowSizes[j]))
      return make(needed)
    }
  })
  return make(0)
}
