/**
 * DeviceMemory: how much memory the compute backend has and uses, and a budget that a stage
 * checks before it allocates, so that a run that would not fit fails with a typed error up
 * front instead of crashing (or swapping) halfway. Host memory on wasm/cpu; GPU memory on
 * tensorflow-gpu.
 */
import { Context, Effect, Schema } from "effect"

export class MemoryBudgetExceeded extends Schema.TaggedError<MemoryBudgetExceeded>()("MemoryBudgetExceeded", {
  stage: Schema.String,
  requiredBytes: Schema.Number,
  availableBytes: Schema.Number,
  message: Schema.String
}) {}

export interface MemoryReport {
  /** Bytes held by tensors of the active backend. */
  readonly tensorBytes: number
  /** Bytes the budget allows in total. */
  readonly budgetBytes: number
  /** What the budget is measured against ("host memory", "GPU memory"). */
  readonly kind: string
}

export class DeviceMemory extends Context.Service<DeviceMemory, {
  readonly report: Effect.Effect<MemoryReport>
  /** Fails before allocating when `bytes` more would exceed the budget. */
  readonly reserve: (stage: string, bytes: number) => Effect.Effect<void, MemoryBudgetExceeded>
}>()("simmer/DeviceMemory") {}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`

/** A DeviceMemory over a budget and a live reading of tensor bytes. */
export const makeDeviceMemory = (kind: string, budgetBytes: number, tensorBytes: () => number): DeviceMemory["Service"] => ({
  report: Effect.sync(() => ({ tensorBytes: tensorBytes(), budgetBytes, kind })),
  reserve: (stage, bytes) =>
    Effect.suspend(() => {
      const used = tensorBytes()
      return used + bytes <= budgetBytes
        ? Effect.void
        : Effect.fail(new MemoryBudgetExceeded({
          stage,
          requiredBytes: bytes,
          availableBytes: Math.max(budgetBytes - used, 0),
          message: `${stage} needs about ${gib(bytes)} more ${kind}, but only ${gib(Math.max(budgetBytes - used, 0))} ` +
            `of the ${gib(budgetBytes)} budget is free (${gib(used)} in use). Lower the batch size or sequence length, ` +
            `or raise the budget with SIMMER_MEMORY_BUDGET_GB.`
        }))
    })
})
