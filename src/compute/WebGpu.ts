/**
 * The WebGPU backend: TensorFlow.js's webgpu kernels on Dawn's Node bindings (the `webgpu`
 * package), which drive the GPU through Vulkan — the NVIDIA driver's Vulkan ICD on a GPU machine,
 * Mesa's lavapipe (Vulkan on the CPU) anywhere else. Nothing is downloaded: Dawn ships inside
 * the npm package and needs only `libvulkan.so.1` and a driver at run time.
 *
 * tfjs-backend-webgpu looks for `navigator.gpu` when its module is first imported, so Dawn's
 * GPU object and its globals (GPUBufferUsage, …) are installed before that import. simmer then
 * registers its own factory for the backend, so that it chooses the adapter and device limits
 * itself and can describe the adapter it got.
 */
import * as tf from "@tensorflow/tfjs"

/** What the Compute service reports about a WebGPU adapter (`simmer inspect`, /readyz). */
export interface GpuAdapter {
  readonly vendor: string
  readonly architecture: string
  readonly device: string
  readonly description: string
  /** A CPU implementation of Vulkan (lavapipe, SwiftShader): correct, but no faster than wasm. */
  readonly software: boolean
  /** The largest storage buffer one kernel can bind: a tensor beyond it must be split. */
  readonly maxStorageBufferBindingSize: number
  readonly maxBufferSize: number
}

const softwareAdapter = (info: GPUAdapterInfo): boolean =>
  info.architecture === "software" || /llvmpipe|lavapipe|swiftshader/i.test(`${info.device} ${info.description}`)

/** Dawn's `navigator.gpu`, created once per process; undefined when the `webgpu` package cannot load. */
let gpu: Promise<GPU | undefined> | undefined
const dawn = (): Promise<GPU | undefined> =>
  (gpu ??= import("webgpu").then(
    ({ create, globals }) => {
      Object.assign(globalThis, globals)
      const instance = create([])
      Object.defineProperty(globalThis.navigator, "gpu", { value: instance, configurable: true })
      return instance
    },
    () => undefined
  ))

const describe = (adapter: GPUAdapter): GpuAdapter => ({
  vendor: adapter.info.vendor,
  architecture: adapter.info.architecture,
  device: adapter.info.device,
  description: adapter.info.description,
  software: softwareAdapter(adapter.info),
  maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
  maxBufferSize: adapter.limits.maxBufferSize
})

/** The adapter Dawn offers (the high-performance one), or undefined: no Vulkan loader, no driver, or a driver Dawn refuses. */
export const findGpuAdapter = async (): Promise<GpuAdapter | undefined> => {
  const instance = await dawn()
  const adapter = await instance?.requestAdapter({ powerPreference: "high-performance" })
  return adapter ? describe(adapter) : undefined
}

/**
 * Installs and initialises the webgpu backend on the adapter Dawn offers, with the adapter's own
 * limits (WebGPU's defaults are far lower: a 128 MiB binding, a 256 MiB buffer). Returns the
 * adapter, or undefined when none is found; throws when the device or the backend fails.
 */
export const initialiseWebGpu = async (): Promise<GpuAdapter | undefined> => {
  const adapter = await (registered ??= registerWebGpu())
  if (adapter === undefined) return undefined
  if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs could not start its webgpu backend on the adapter")
  return adapter
}

/** The backend's registration, once per process (switching back to webgpu later reuses its device). */
let registered: Promise<GpuAdapter | undefined> | undefined
const registerWebGpu = async (): Promise<GpuAdapter | undefined> => {
  const instance = await dawn()
  const adapter = await instance?.requestAdapter({ powerPreference: "high-performance" })
  if (!adapter) return undefined
  const { WebGPUBackend } = await import("@tensorflow/tfjs-backend-webgpu")
  // Every op on the GPU: tfjs would run an op on its CPU kernels when its small inputs still
  // live in host memory (freshly uploaded weights, a resumed optimizer state), and a run resumed
  // from disk would then sum in another order than the run that never stopped.
  tf.env().set("WEBGPU_CPU_FORWARD", false)
  const limits = adapter.limits
  // Replace the module's own factory (it would ask for its own adapter) with one on this adapter.
  tf.removeBackend("webgpu")
  tf.registerBackend("webgpu", async () => {
    const device = await adapter.requestDevice({
      requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
      requiredLimits: {
        maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
        maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
        maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
        maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
        // tfjs splits an addN (a gradient norm over every parameter) by this limit, read from the
        // device: without asking for the adapter's, the device keeps WebGPU's default of 8.
        maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage
      }
    })
    // A validation error (a binding past the limit, say) would otherwise only be printed by Dawn
    // and leave wrong numbers behind: remember it so the next read fails loudly.
    device.addEventListener("uncapturederror", (event) => {
      deviceErrors.push(String((event as GPUUncapturedErrorEvent).error.message))
    })
    return new WebGPUBackend(device, adapter.info)
  }, 3)
  return describe(adapter)
}

const deviceErrors: Array<string> = []

/**
 * The GPU errors reported since the last call, as one Error (and forgets them); undefined when
 * none. A kernel the GPU rejected leaves zeros behind, so its result must not be used.
 */
export const takeGpuFailure = (): Error | undefined => {
  const errors = deviceErrors.splice(0)
  return errors.length === 0 ? undefined : new Error(`The GPU rejected work, so this result is wrong: ${errors.join(" | ")}`)
}

/** One line for logs and `simmer inspect`: "webgpu (nvidia ampere, NVIDIA A100 …; binding limit 2 GiB)". */
export const describeGpuAdapter = (adapter: GpuAdapter): string =>
  `webgpu (${[adapter.vendor, adapter.architecture].filter((s) => s !== "").join(" ")}: ${adapter.description || adapter.device}` +
  `${adapter.software ? ", Vulkan on the CPU" : ""}; binding limit ${Math.round(adapter.maxStorageBufferBindingSize / 2 ** 20)} MiB)`

/** The largest buffer one kernel of the active tfjs backend may bind: the WebGPU device's limit on webgpu, unbounded elsewhere. */
export const activeBindingLimitBytes = (): number =>
  tf.getBackend() === "webgpu"
    ? (tf.backend() as unknown as { readonly device: GPUDevice }).device.limits.maxStorageBufferBindingSize
    : Infinity
