/**
 * The peak of tensor memory while some work runs: the largest total, over the work, of the bytes
 * of distinct tensor buffers the engine held (views such as reshapes share a buffer and count
 * once). tfjs only reports the current total (`tf.memory()`), and `tf.profile` changes what it
 * measures (it keeps kernel outputs alive for its timing), so this follows the engine's own
 * bookkeeping of buffers as they are registered and removed. Used to check DeviceMemory's
 * estimates against reality, in tests and benchmarks.
 */
import * as tf from "@tensorflow/tfjs"

interface EngineInternals {
  readonly state: { readonly tensorInfo: WeakMap<object, { readonly bytes: number }> }
  trackTensor(a: tf.Tensor, backend: unknown): void
  removeDataId(dataId: object, backend: unknown): void
}

/** Runs `work` and returns its result with the peak of buffer bytes above what was held before it. */
export const measurePeak = async <A>(work: () => A | Promise<A>): Promise<{ readonly result: A; readonly peakBytes: number }> => {
  const engine = tf.engine() as unknown as EngineInternals
  const infos = engine.state.tensorInfo
  // Bytes of buffers registered minus those removed since the start (the map is not iterable).
  let current = 0
  let peak = 0
  const track = engine.trackTensor
  const remove = engine.removeDataId
  engine.trackTensor = function(this: EngineInternals, a, backend) {
    const known = infos.has(a.dataId as object)
    track.call(this, a, backend)
    if (!known && infos.has(a.dataId as object)) {
      current += infos.get(a.dataId as object)!.bytes
      if (current > peak) peak = current
    }
  }
  engine.removeDataId = function(this: EngineInternals, dataId: object, backend) {
    const info = infos.get(dataId)
    remove.call(this, dataId, backend)
    if (info !== undefined && !infos.has(dataId)) current -= info.bytes
  }
  try {
    const result = await work()
    return { result, peakBytes: peak }
  } finally {
    engine.trackTensor = track
    engine.removeDataId = remove
  }
}
