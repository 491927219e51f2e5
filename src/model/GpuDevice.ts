/**
 * What model code needs to know about a WebGPU device, without knowing how the backend was set
 * up (compute/WebGpu.ts does that): the largest buffer one kernel may bind, and the errors the
 * device reported. A kernel the GPU rejects (a binding past the limit, say) leaves zeros behind
 * and only reports an error, so reads (Read.ts) check for them and fail loudly.
 */
import * as tf from "@tensorflow/tfjs"

/** The largest buffer one kernel of the active tfjs backend may bind: the WebGPU device's limit on webgpu, unbounded elsewhere. */
export const activeBindingLimitBytes = (): number =>
  tf.getBackend() === "webgpu"
    ? (tf.backend() as unknown as { readonly device: GPUDevice }).device.limits.maxStorageBufferBindingSize
    : Infinity

const deviceErrors: Array<string> = []

/** Remembers an error the device reported (its uncapturederror event). */
export const recordGpuError = (message: string): void => {
  deviceErrors.push(message)
}

/**
 * The GPU errors reported since the last call, as one Error (and forgets them); undefined when
 * none. A kernel the GPU rejected leaves zeros behind, so its result must not be used.
 */
export const takeGpuFailure = (): Error | undefined => {
  const errors = deviceErrors.splice(0)
  return errors.length === 0 ? undefined : new Error(`The GPU rejected work, so this result is wrong: ${errors.join(" | ")}`)
}
