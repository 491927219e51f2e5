/**
 * Choosing and initialising the TensorFlow.js backend (the work behind the Compute service).
 *
 * Order: an explicit choice (argument, else the SIMMER_BACKEND variable) or, when none is
 * given, the first that initialises of tensorflow (tfjs-node-gpu, then tfjs-node) → webgpu on a
 * hardware GPU → wasm → cpu. `auto` passes over a software WebGPU adapter (lavapipe computes at
 * 1-2 GFLOP/s, slower than wasm); `--backend webgpu` takes it. The tensorflow packages are
 * optional peer dependencies loaded by dynamic import: their install downloads libtensorflow,
 * so they exist only where a user installed them.
 */
import * as tf from "@tensorflow/tfjs"
import { Config, Effect, Option, Schema } from "effect"
// Types only: services/Compute.ts builds its layer from this file.
import type { Compute } from "../services/Compute.ts"
import { registerWasmKernels } from "./wasm/Kernels.ts"
import { describeGpuAdapter, findGpuAdapter, type GpuAdapter, initialiseWebGpu } from "./WebGpu.ts"

export const BackendNames = ["tensorflow", "webgpu", "wasm", "cpu"] as const
export type BackendName = (typeof BackendNames)[number]

/** What a user may ask for: a backend, or `auto` (the order above). */
export const BackendChoices = ["auto", ...BackendNames] as const

export class BackendUnavailable extends Schema.TaggedError<BackendUnavailable>()("BackendUnavailable", {
  backend: Schema.String,
  message: Schema.String
}) {}

const installHint =
  "Install it in the simmer checkout with `npm install @tensorflow/tfjs-node-gpu@4.22.0` (CUDA 11.8 + cuDNN 8 " +
  "on Linux x64) or `npm install @tensorflow/tfjs-node@4.22.0` (CPU); both download libtensorflow during install. " +
  "Or choose another backend: --backend wasm (default here) or --backend cpu."

/** Tries tfjs-node-gpu then tfjs-node; undefined when neither is installed or loads. */
const loadTensorflow = async (): Promise<string | undefined> => {
  for (const [pkg, label] of [
    ["@tensorflow/tfjs-node-gpu", "tfjs-node-gpu (CUDA)"],
    ["@tensorflow/tfjs-node", "tfjs-node (CPU, libtensorflow)"]
  ] as const) {
    try {
      await import(pkg)
      if (await tf.setBackend("tensorflow")) return label
    } catch {
      // not installed, or libtensorflow failed to load: try the next one
    }
  }
  return undefined
}

/** An initialised backend: its description, and the GPU adapter for webgpu. */
interface Initialised {
  readonly description: string
  readonly adapter?: GpuAdapter
}

/** WebGPU on the adapter Dawn offers; under `auto` only a hardware one (Vulkan on the CPU is slower than wasm). */
const initialiseWebGpuBackend = async (explicit: boolean): Promise<Initialised | undefined> => {
  if (!explicit) {
    const found = await findGpuAdapter()
    if (found === undefined || found.software) return undefined
  }
  const adapter = await initialiseWebGpu()
  return adapter && { description: describeGpuAdapter(adapter), adapter }
}

const initialise = async (backend: BackendName, explicit: boolean): Promise<Initialised | undefined> => {
  const described = (description: string | undefined) => description === undefined ? undefined : { description }
  switch (backend) {
    case "tensorflow":
      return described(await loadTensorflow())
    case "webgpu":
      return initialiseWebGpuBackend(explicit)
    case "wasm": {
      await import("@tensorflow/tfjs-backend-wasm")
      registerWasmKernels()
      if (!(await tf.setBackend("wasm"))) return undefined
      const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")
      return described(`wasm (${simd ? "SIMD, " : ""}simmer matMul kernels, 1 thread)`)
    }
    case "cpu":
      return described((await tf.setBackend("cpu")) ? "cpu (pure JavaScript)" : undefined)
  }
}

const parseChoice = (raw: string | undefined): Effect.Effect<BackendName | undefined, BackendUnavailable> => {
  if (raw === undefined || raw === "" || raw === "auto") return Effect.succeed(undefined)
  return (BackendNames as ReadonlyArray<string>).includes(raw)
    ? Effect.succeed(raw as BackendName)
    : Effect.fail(new BackendUnavailable({
      backend: raw,
      message: `Unknown backend "${raw}" (from --backend or SIMMER_BACKEND). Choose one of: auto, ${BackendNames.join(", ")}.`
    }))
}

/** Selects the backend; `choice` overrides SIMMER_BACKEND; "auto" or nothing means the default order. */
export const selectBackend = Effect.fn("Compute.selectBackend")(function*(choice?: string): Effect.fn.Return<Compute["Service"], BackendUnavailable> {
  // Production mode: no debug checks, and no console banner suggesting tfjs-node.
  tf.enableProdMode()
  const configured = yield* Config.option(Config.String("SIMMER_BACKEND")).pipe(Effect.orElseSucceed(() => Option.none<string>()))
  const explicit = yield* parseChoice(choice ?? Option.getOrUndefined(configured))
  const candidates: ReadonlyArray<BackendName> = explicit !== undefined ? [explicit] : BackendNames
  for (const backend of candidates) {
    const initialised = yield* Effect.tryPromise({
      try: () => initialise(backend, explicit !== undefined),
      catch: (cause) => new BackendUnavailable({
        backend,
        message: `The ${backend} backend failed to initialise: ${String(cause)}`
      })
    }).pipe(explicit === undefined ? Effect.orElseSucceed(() => undefined) : (e) => e)
    if (initialised !== undefined) {
      yield* Effect.logInfo(`compute backend: ${initialised.description}${explicit ? "" : " (auto)"}`)
      return { backend, ...initialised }
    }
    if (explicit !== undefined) {
      return yield* new BackendUnavailable({
        backend,
        message: backend === "tensorflow"
          ? `The tensorflow backend was requested but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed or loadable. ${installHint}`
          : backend === "webgpu"
          ? `The webgpu backend was requested but Dawn found no GPU adapter. It needs the Vulkan loader (Debian: libvulkan1) and a Vulkan driver: the NVIDIA driver with its Vulkan ICD (in a container, NVIDIA_DRIVER_CAPABILITIES must include graphics), or Mesa's lavapipe >= 25 on the CPU (Debian 12: mesa-vulkan-drivers from bookworm-backports; see .ci/install-lavapipe). \`vulkaninfo --summary\` shows what Vulkan sees.`
          : `The ${backend} backend was requested but did not initialise.`
      })
    }
  }
  return yield* new BackendUnavailable({ backend: "auto", message: "No TensorFlow.js backend could be initialised." })
})
