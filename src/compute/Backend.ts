/**
 * Choosing and initialising the TensorFlow.js backend (the work behind the Compute service).
 *
 * Order: an explicit choice (argument, else the SIMMER_BACKEND variable) or, when none is
 * given, the first that initialises of tensorflow (tfjs-node-gpu, then tfjs-node) → wasm → cpu.
 * The tensorflow packages are optional peer dependencies loaded by dynamic import: their
 * install downloads libtensorflow, so they exist only where a user installed them.
 */
import * as tf from "@tensorflow/tfjs"
import { Config, Effect, Option, Schema } from "effect"
// Types only: services/Compute.ts builds its layer from this file.
import type { Compute } from "../services/Compute.ts"
import { registerWasmKernels } from "./wasm/Kernels.ts"

export const BackendNames = ["tensorflow", "wasm", "cpu"] as const
export type BackendName = (typeof BackendNames)[number]

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

const initialise = async (backend: BackendName): Promise<string | undefined> => {
  switch (backend) {
    case "tensorflow":
      return loadTensorflow()
    case "wasm": {
      await import("@tensorflow/tfjs-backend-wasm")
      registerWasmKernels()
      if (!(await tf.setBackend("wasm"))) return undefined
      const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")
      return `wasm (${simd ? "SIMD, " : ""}simmer matMul kernels, 1 thread)`
    }
    case "cpu":
      return (await tf.setBackend("cpu")) ? "cpu (pure JavaScript)" : undefined
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
    const description = yield* Effect.tryPromise({
      try: () => initialise(backend),
      catch: (cause) => new BackendUnavailable({
        backend,
        message: `The ${backend} backend failed to initialise: ${String(cause)}`
      })
    }).pipe(explicit === undefined ? Effect.orElseSucceed(() => undefined) : (e) => e)
    if (description !== undefined) {
      yield* Effect.logInfo(`compute backend: ${description}${explicit ? "" : " (auto)"}`)
      return { backend, description }
    }
    if (explicit !== undefined) {
      return yield* new BackendUnavailable({
        backend,
        message: backend === "tensorflow"
          ? `The tensorflow backend was requested but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed or loadable. ${installHint}`
          : `The ${backend} backend was requested but did not initialise.`
      })
    }
  }
  return yield* new BackendUnavailable({ backend: "auto", message: "No TensorFlow.js backend could be initialised." })
})
