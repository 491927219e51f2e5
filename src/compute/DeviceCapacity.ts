/**
 * How many tensor bytes the active backend can hold, and the check made before every large
 * upload or computation, so that running out of memory is a typed error that says what to
 * change, never a wasm `memory access out of bounds` or a garbage number.
 *
 * The wasm backend keeps every tensor in one WebAssembly memory that can grow to at most 4 GiB;
 * when it cannot grow, allocations fail inside the module and corrupt what they touch. We
 * budget 3.5 GiB of tensor bytes there (the rest for the allocator's fragmentation and kernel
 * scratch space). Other backends are budgeted against 80% of host RAM (GPU memory on
 * tensorflow-gpu is not visible from here). DeviceMemory reserves a whole plan's estimated peak
 * up front; this check guards each upload of block-by-block work as it happens.
 */
import { totalmem } from "node:os"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { formatBytes } from "../model/Footprint.ts"
import { MemoryBudgetExceeded } from "../services/DeviceMemory.ts"

export const wasmTensorBudgetBytes = 3.5 * 2 ** 30

export interface DeviceCapacity {
  readonly kind: string
  readonly bytes: number
}

/** The tensor budget of the active backend. */
export const deviceCapacity = (): DeviceCapacity =>
  tf.getBackend() === "wasm"
    ? { kind: "wasm heap", bytes: wasmTensorBudgetBytes }
    : { kind: "host memory", bytes: 0.8 * totalmem() }


/** The budget of the active backend, capped by `cap` (the user's --memory), and what is allocated now. */
const room = (cap: number | undefined) => {
  const { kind, bytes } = deviceCapacity()
  return { kind, budget: Math.min(bytes, cap ?? Infinity), used: tf.memory().numBytes }
}

/**
 * Fails before `bytes` more tensor bytes are allocated when they would not fit beside what is
 * already allocated. `advice` says what to change (a smaller batch, another backend, ...);
 * `cap` lowers the backend's budget to the one the user gave.
 */
export const ensureDeviceRoom = (stage: string, bytes: number, advice: string, cap?: number): Effect.Effect<void, MemoryBudgetExceeded> =>
  Effect.suspend(() => {
    const { kind, budget, used } = room(cap)
    if (used + bytes <= budget) return Effect.void
    const free = Math.max(budget - used, 0)
    return Effect.fail(new MemoryBudgetExceeded({
      what: stage,
      requiredBytes: bytes,
      budgetBytes: budget,
      availableBytes: free,
      message: `${stage} needs about ${formatBytes(bytes)} of tensor memory, but only ${formatBytes(free)} of the ${formatBytes(budget)} ` +
        `${kind} budget is free (${formatBytes(used)} in use). ${advice}`
    }))
  })

/**
 * The largest count up to `wanted` (a batch size) whose `bytes(count)` fit beside what is
 * allocated, so that work shrinks its batch rather than overrun the device; fails as
 * ensureDeviceRoom does when not even one fits. `bytes` must grow with the count.
 */
export const largestFitting = (
  stage: (count: number) => string,
  wanted: number,
  bytes: (count: number) => number,
  advice: string,
  cap?: number
): Effect.Effect<number, MemoryBudgetExceeded> =>
  Effect.suspend(() => {
    const { budget, used } = room(cap)
    const fits = (count: number) => used + bytes(count) <= budget
    if (fits(wanted)) return Effect.succeed(wanted)
    if (!fits(1)) return ensureDeviceRoom(stage(1), bytes(1), advice, cap).pipe(Effect.as(1))
    let [low, high] = [1, wanted] // fits(low), !fits(high)
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2)
      if (fits(middle)) low = middle
      else high = middle
    }
    return Effect.succeed(low)
  })
