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
import { existsSync, readdirSync } from "node:fs"
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { recordGpuError } from "../model/GpuDevice.ts"

/** What the Compute service reports about a WebGPU adapter (`simmer inspect`, /readyz, run.json). */
export const GpuAdapter = Schema.Struct({
  vendor: Schema.String,
  architecture: Schema.String,
  device: Schema.String,
  description: Schema.String,
  /** A CPU implementation of Vulkan (lavapipe, SwiftShader): correct, but no faster than wasm. */
  software: Schema.Boolean,
  /** The largest storage buffer one kernel can bind: a tensor beyond it must be split. */
  maxStorageBufferBindingSize: Schema.Number,
  maxBufferSize: Schema.Number
})
export type GpuAdapter = typeof GpuAdapter.Type

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

/**
 * Whether the machine shows a GPU's device node (/dev/nvidiactl, /dev/dri/renderD*). Without
 * one only a software adapter can exist, so `auto` need not start Dawn at all (which would also
 * print its warnings about lavapipe's limits on every command).
 */
export const hasGpuDeviceNode = (): boolean => {
  if (existsSync("/dev/nvidiactl")) return true
  try {
    return readdirSync("/dev/dri").some((name) => name.startsWith("renderD"))
  } catch {
    return false
  }
}

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
      recordGpuError(String((event as GPUUncapturedErrorEvent).error.message))
    })
    return new WebGPUBackend(device, adapter.info)
  }, 3)
  return describe(adapter)
}

/** One line for logs and `simmer inspect`: "webgpu (nvidia ampere, NVIDIA A100 …; binding limit 2 GiB)". */
export const describeGpuAdapter = (adapter: GpuAdapter): string =>
  `webgpu (${[adapter.vendor, adapter.architecture].filter((s) => s !== "").join(" ")}: ${adapter.description || adapter.device}` +
  `${adapter.software ? ", Vulkan on the CPU" : ""}; binding limit ${Math.round(adapter.maxStorageBufferBindingSize / 2 ** 20)} MiB)`

