/**
 * The check made before every large upload or computation of block-by-block work, so that
 * running out of memory is a typed error that says what to change, never a wasm `memory access
 * out of bounds` or a garbage number. It measures what is allocated now (`tf.memory()`) against
 * the one memory budget of the process: the DeviceMemory service hands its budget in as a
 * DeviceRoom (model code knows no services), so the user's --memory governs these checks too.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { formatBytes, MemoryBudgetExceeded } from "./Footprint.ts"

export interface DeviceRoom {
  /** What the budget is ("wasm heap", "GPU memory", "host memory"). */
  readonly kind: string
  readonly budgetBytes: number
  /**
   * Fails before `bytes` more tensor bytes are allocated when they would not fit beside what is
   * already allocated. `advice` says what to change (a smaller batch, another backend, ...).
   */
  readonly ensure: (stage: string, bytes: number, advice: string) => Effect.Effect<void, MemoryBudgetExceeded>
  /**
   * The largest count up to `wanted` (a batch size) whose `bytes(count)` fit beside what is
   * allocated, so that work shrinks its batch rather than overrun the device; fails as `ensure`
   * does when not even one fits. `bytes` must grow with the count.
   */
  readonly largestFitting: (
    stage: (count: number) => string,
    wanted: number,
    bytes: (count: number) => number,
    advice: string
  ) => Effect.Effect<number, MemoryBudgetExceeded>
}

/** A DeviceRoom over `budgetBytes` of `kind`, counting every tensor the tfjs engine holds as used. */
export const deviceRoom = (kind: string, budgetBytes: number): DeviceRoom => {
  const ensure = (stage: string, bytes: number, advice: string): Effect.Effect<void, MemoryBudgetExceeded> =>
    Effect.suspend(() => {
      const used = tf.memory().numBytes
      if (used + bytes <= budgetBytes) return Effect.void
      const free = Math.max(budgetBytes - used, 0)
      return Effect.fail(
        new MemoryBudgetExceeded({
          what: stage,
          requiredBytes: bytes,
          budgetBytes,
          availableBytes: free,
          message: `${stage} needs about ${formatBytes(bytes)} of tensor memory, but only ${formatBytes(free)} of the ` +
            `${formatBytes(budgetBytes)} ${kind} budget is free (${formatBytes(used)} in use). ${advice}`
        })
      )
    })
  return {
    kind,
    budgetBytes,
    ensure,
    largestFitting: (stage, wanted, bytes, advice) =>
      Effect.suspend(() => {
        const used = tf.memory().numBytes
        const fits = (count: number) => used + bytes(count) <= budgetBytes
        if (fits(wanted)) return Effect.succeed(wanted)
        if (!fits(1)) return ensure(stage(1), bytes(1), advice).pipe(Effect.as(1))
        let [low, high] = [1, wanted] // fits(low), !fits(high)
        while (high - low > 1) {
          const middle = Math.floor((low + high) / 2)
          if (fits(middle)) low = middle
          else high = middle
        }
        return Effect.succeed(low)
      })
  }
}
