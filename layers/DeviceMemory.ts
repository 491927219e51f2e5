/**
 * Live DeviceMemory. The budget is, in order: an explicit size (the CLI's --memory), the
 * SIMMER_MEMORY_GB setting, or the backend's own limit — 90% of the wasm heap's 4 GiB on wasm
 * (the rest is the runtime's; a larger setting cannot raise it), 80% of host memory on cpu and on tensorflow without CUDA. tfjs
 * cannot read a GPU's memory, so on CUDA it must be given; without it simmer budgets against
 * host memory and says so.
 */
import { totalmem } from "node:os"
import { Config, Effect, Layer, Option } from "effect"
import { Compute } from "../src/services/Compute.ts"
import { DeviceMemory, makeDeviceMemory } from "../src/services/DeviceMemory.ts"

const GIB = 2 ** 30

/** The wasm heap's budget: 90% of its 4 GiB, the rest for the allocator's fragmentation and kernel scratch space. */
export const wasmHeapBudgetBytes = 0.9 * 4 * GIB

export const DeviceMemoryLive = (explicitGib?: number): Layer.Layer<DeviceMemory, never, Compute> =>
  Layer.effect(
    DeviceMemory,
    Effect.gen(function*() {
      const compute = yield* Compute
      const configured = explicitGib ?? Option.getOrUndefined(
        yield* Config.option(Config.Number("SIMMER_MEMORY_GB")).pipe(Effect.orElseSucceed(() => Option.none<number>()))
      )
      const given = configured !== undefined && Number.isFinite(configured) && configured > 0 ? configured * GIB : undefined
      const gpu = compute.backend === "tensorflow" && compute.description.includes("CUDA")
      if (gpu && given === undefined) {
        yield* Effect.logWarning("the GPU's memory is unknown to tfjs: budgeting against host memory; give it with --memory GIB or SIMMER_MEMORY_GB")
      }
      const [kind, budget] = gpu
        ? [given !== undefined ? "GPU memory" : "host memory", given ?? 0.8 * totalmem()]
        : compute.backend === "wasm"
        ? ["wasm heap", Math.min(given ?? Infinity, wasmHeapBudgetBytes)]
        : ["host memory", given ?? 0.8 * totalmem()]
      return yield* makeDeviceMemory(kind, budget)
    })
  )
