/**
 * Live DeviceMemory: usage is what tfjs reports for the active backend; the budget is
 * SIMMER_MEMORY_BUDGET_GB when set, else 80% of host RAM. On the tensorflow backend with CUDA
 * the budget should be the GPU's memory, which tfjs-node-gpu does not report: set the variable
 * there (a warning says so when it is missing).
 */
import { totalmem } from "node:os"
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { Compute } from "../src/services/Compute.ts"
import { DeviceMemory, makeDeviceMemory } from "../src/services/DeviceMemory.ts"

export const DeviceMemoryLive: Layer.Layer<DeviceMemory, never, Compute> = Layer.effect(
  DeviceMemory,
  Effect.gen(function*() {
    const compute = yield* Compute
    const configured = Number(process.env.SIMMER_MEMORY_BUDGET_GB)
    const explicit = Number.isFinite(configured) && configured > 0
    const gpu = compute.backend === "tensorflow" && compute.description.includes("CUDA")
    if (gpu && !explicit) {
      yield* Effect.logWarning("SIMMER_MEMORY_BUDGET_GB is not set: budgeting against host RAM, not GPU memory")
    }
    const budget = explicit ? configured * 2 ** 30 : 0.8 * totalmem()
    return makeDeviceMemory(gpu && explicit ? "GPU memory" : "host memory", budget, () => tf.memory().numBytes)
  })
)
