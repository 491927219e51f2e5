/**
 * Asynchronous tensor reads. The WebGPU backend cannot read a tensor synchronously
 * (dataSync/arraySync/bufferSync throw there), so every read goes through these, kept at the
 * edges of a step (one read of a stacked tensor, not one per element).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { takeGpuFailure } from "./GpuDevice.ts"

/** Disposes t once the read ends (however it ends) when `dispose` is set. */
const releasing = (t: tf.Tensor, dispose: boolean) =>
  Effect.ensuring(Effect.sync(() => {
    if (dispose) t.dispose()
  }))

/**
 * On webgpu a kernel the GPU rejected (a binding past the adapter's limit, say) leaves zeros
 * behind and only reports an error: a read after one dies with the GPU's words, never returns them.
 */
const failOnGpuErrors = Effect.suspend(() => {
  const failure = takeGpuFailure()
  return failure === undefined ? Effect.void : Effect.die(failure)
})

/** The values of t as it is typed (Int32Array for int32 tensors); disposed when `dispose` is set. */
export const readData = (t: tf.Tensor, dispose = false): Effect.Effect<tf.TypedArray> =>
  Effect.promise(() => t.data() as Promise<tf.TypedArray>).pipe(Effect.tap(() => failOnGpuErrors), releasing(t, dispose))

/** The values of a float32 tensor; t is disposed after the read when `dispose` is set. */
export const readFloats = (t: tf.Tensor, dispose = false): Effect.Effect<Float32Array> =>
  readData(t, dispose) as Effect.Effect<Float32Array>

/** The first value of t (a scalar); disposed when `dispose` is set. */
export const readScalar = (t: tf.Tensor, dispose = false): Effect.Effect<number> =>
  Effect.map(readData(t, dispose), (data) => data[0])

/** The values of t as nested arrays (t.array()); disposed when `dispose` is set. */
export const readArray = <T extends tf.Tensor>(t: T, dispose = false): Effect.Effect<Awaited<ReturnType<T["array"]>>> =>
  Effect.promise(() => t.array() as Promise<Awaited<ReturnType<T["array"]>>>).pipe(Effect.tap(() => failOnGpuErrors), releasing(t, dispose))

/** A promise form for plain async code (worker threads): the floats of t, disposed when `dispose` is set; a GPU failure rejects with its own error. */
export const readFloatsAsync = (t: tf.Tensor, dispose = false): Promise<Float32Array> => Effect.runPromise(readFloats(t, dispose))

/**
 * Reads requested where no await is possible (an observer inside a tidy, a block's backward):
 * `defer` keeps the tensor past the tidy, and `flush` later reads every pending tensor in the
 * order they were deferred, hands each its values and disposes it. `release` disposes what was
 * never read (flush it or release it however the pass ends).
 */
export interface DeferredReads {
  readonly defer: (t: tf.Tensor, use: (data: tf.TypedArray) => void) => void
  readonly flush: Effect.Effect<void>
  readonly release: Effect.Effect<void>
}

export const deferredReads = (): DeferredReads => {
  const pending: Array<{ readonly tensor: tf.Tensor; readonly use: (data: tf.TypedArray) => void }> = []
  return {
    defer: (t, use) => {
      pending.push({ tensor: tf.keep(t), use })
    },
    flush: Effect.suspend(() => {
      const taken = pending.splice(0, pending.length)
      return Effect.forEach(taken, ({ tensor, use }, i) =>
        Effect.map(readData(tensor, true), use).pipe(
          // Cut short: what was taken and not yet read is released here.
          Effect.onInterrupt(() => Effect.sync(() => tf.dispose(taken.slice(i + 1).map((p) => p.tensor))))
        ), { discard: true })
    }),
    release: Effect.sync(() => tf.dispose(pending.splice(0, pending.length).map((p) => p.tensor)))
  }
}
