/**
 * DeviceMemory: how much memory the compute device offers simmer, and who holds which part of
 * it. Work reserves its estimated peak (model/Footprint.ts) before it starts and holds the
 * reservation while it runs, so a plan that cannot fit is refused up front with the numbers —
 * never a wasm out-of-bounds crash halfway — and several runs in one process (the daemon) run
 * side by side only as far as their reservations fit. The budget: the wasm heap's 4 GiB on
 * wasm, the GPU's memory with tensorflow on CUDA or webgpu on a GPU (given by the user: neither
 * tfjs nor WebGPU reports it), host memory on cpu and on a software WebGPU adapter. `DeviceMemory.layer` finds the budget.
 */
import { totalmem } from "node:os"
import { Config, Context, Effect, Layer, Option, type Scope, Semaphore } from "effect"
import { type DeviceRoom, deviceRoom } from "../model/DeviceRoom.ts"
import { describeFootprint, type Footprint, formatBytes, MemoryBudgetExceeded } from "../model/Footprint.ts"
import { Compute } from "./Compute.ts"

const GIB = 2 ** 30

/** The wasm heap's budget: 90% of its 4 GiB, the rest for the allocator's fragmentation and kernel scratch space. */
export const wasmHeapBudgetBytes = 0.9 * 4 * GIB

export interface ReserveOptions {
  /** Wait while other reservations hold the room (the daemon's queue); default: fail at once. */
  readonly wait?: boolean
  /** What the user can change to need less, for the refusal message. */
  readonly advice?: string
}

export class DeviceMemory extends Context.Service<DeviceMemory, {
  /** Bytes the budget allows in total. */
  readonly budgetBytes: number
  /** What the budget is ("wasm heap", "GPU memory", "host memory"). */
  readonly kind: string
  /** The largest buffer one kernel may bind: the WebGPU adapter's limit; unbounded elsewhere. */
  readonly bindingLimitBytes: number
  /** Bytes held by reservations now. */
  readonly reservedBytes: Effect.Effect<number>
  /**
   * Holds `need.bytes` of the budget until the scope closes. A need larger than the whole budget
   * fails at once; one that would fit once others finish fails or waits (`options.wait`).
   */
  readonly reserve: (what: string, need: Footprint, options?: ReserveOptions) => Effect.Effect<void, MemoryBudgetExceeded, Scope.Scope>
  /** The same budget as checked before each upload of block-by-block work, against what is allocated now. */
  readonly room: DeviceRoom
}>()("simmer/DeviceMemory") {
  /**
   * The budget is, in order: an explicit size (the CLI's --memory), the SIMMER_MEMORY_GB
   * setting, or the backend's own limit — 90% of the wasm heap's 4 GiB on wasm (the rest is the
   * runtime's; a larger setting cannot raise it), 80% of host memory on cpu and on tensorflow
   * without CUDA. tfjs cannot read a GPU's memory, so on CUDA it must be given; without it simmer
   * budgets against host memory and says so. The same holds for webgpu on a hardware adapter.
   */
  static readonly layer = (explicitGib?: number): Layer.Layer<DeviceMemory, never, Compute> =>
    Layer.effect(
      DeviceMemory,
      Effect.gen(function*() {
        const compute = yield* Compute
        const configured = explicitGib ?? Option.getOrUndefined(
          yield* Config.option(Config.Number("SIMMER_MEMORY_GB")).pipe(Effect.orElseSucceed(() => Option.none<number>()))
        )
        const given = configured !== undefined && Number.isFinite(configured) && configured > 0 ? configured * GIB : undefined
        // A GPU of its own: CUDA under tensorflow, or a hardware WebGPU adapter (lavapipe's "GPU memory" is host memory).
        const gpu = (compute.backend === "tensorflow" && compute.description.includes("CUDA")) ||
          (compute.adapter !== undefined && !compute.adapter.software)
        if (gpu && given === undefined) {
          yield* Effect.logWarning(`the GPU's memory is unknown to ${compute.backend === "webgpu" ? "WebGPU" : "tfjs"}: budgeting against host memory; give it with --memory GIB or SIMMER_MEMORY_GB`)
        }
        const [kind, budget] = gpu
          ? [given !== undefined ? "GPU memory" : "host memory", given ?? 0.8 * totalmem()]
          : compute.backend === "wasm"
          ? ["wasm heap", Math.min(given ?? Infinity, wasmHeapBudgetBytes)]
          : ["host memory", given ?? 0.8 * totalmem()]
        return yield* makeDeviceMemory(kind, budget, undefined, compute.adapter?.maxStorageBufferBindingSize)
      })
    )
}

// Reservations are counted in MiB so that a 24 GiB budget is a modest number of permits.
const MIB = 2 ** 20

/**
 * A DeviceMemory over a budget of `budgetBytes` of `kind`. `room`: the uploads' check, by default
 * against this budget; a run's share of a larger budget passes the whole one's, since what is
 * allocated now counts every run in the process. `bindingLimitBytes`: the adapter's on webgpu.
 */
export const makeDeviceMemory = (
  kind: string,
  budgetBytes: number,
  room: DeviceRoom = deviceRoom(kind, budgetBytes),
  bindingLimitBytes = Infinity
): Effect.Effect<DeviceMemory["Service"]> =>
  Effect.gen(function*() {
    const total = Math.floor(budgetBytes / MIB)
    const permits = yield* Semaphore.make(total)
    let held = 0
    const refuse = (what: string, need: Footprint, available: number, advice: string | undefined) =>
      new MemoryBudgetExceeded({
        what,
        requiredBytes: need.bytes,
        budgetBytes,
        availableBytes: available,
        message: `${what} needs about ${describeFootprint(need).replace(" (", ` of ${kind} at its peak (`)}, but ` +
          (available >= budgetBytes
            ? `the budget is ${formatBytes(budgetBytes)}.`
            : `only ${formatBytes(available)} of the ${formatBytes(budgetBytes)} budget is free while other work holds the rest.`) +
          (advice !== undefined ? ` ${advice}` : "")
      })
    return DeviceMemory.of({
      budgetBytes,
      kind,
      bindingLimitBytes,
      room,
      reservedBytes: Effect.sync(() => held * MIB),
      reserve: (what, need, options = {}) =>
        Effect.gen(function*() {
          const count = Math.max(1, Math.ceil(need.bytes / MIB))
          if (count > total) return yield* refuse(what, need, budgetBytes, options.advice)
          if (options.wait) {
            yield* Semaphore.takeScoped(permits, count)
          } else {
            yield* Effect.acquireRelease(
              Semaphore.takeIfAvailable(permits, count).pipe(
                Effect.flatMap((taken) => (taken ? Effect.void : Effect.fail(refuse(what, need, (total - held) * MIB, options.advice))))
              ),
              () => Semaphore.release(permits, count)
            )
          }
          yield* Effect.acquireRelease(Effect.sync(() => (held += count)), () => Effect.sync(() => (held -= count)))
        })
    })
  })
