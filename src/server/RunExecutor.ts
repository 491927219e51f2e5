/**
 * RunExecutor: the seam between the daemon's queue and the place a run computes. The scheduler
 * asks it to start a run (it answers "no room yet" when the device cannot hold the run beside
 * the ones already going), passes each update on as it happens, and can ask a run to stop at
 * its next step boundary or end it at once. This process's executor (`localRunExecutor`) runs
 * the `simmer run` stream in a fiber; an executor that places runs on other machines (issue 15)
 * implements the same three things.
 */
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Schema, Scope, Stream } from "effect"
import { readCheckpointConfig } from "../io/Checkpoint.ts"
import type { FileSystemError } from "../io/Errors.ts"
import type { InvalidEventLog } from "../io/EventLog.ts"
import { recordInRunInfo } from "../io/RunInfo.ts"
import type { Plan } from "../pipeline/Plan.ts"
import { planMemoryAdvice } from "../pipeline/PlanFootprint.ts"
import { runFootprint, runUpdates } from "../pipeline/Run.ts"
import { failureMessage } from "../pipeline/RunFailure.ts"
import type { RunUpdate } from "../pipeline/RunUpdate.ts"
import { writeReport } from "../report/Report.ts"
import { resolveInference } from "../compute/Inference.ts"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory, makeDeviceMemory } from "../services/DeviceMemory.ts"
import type { Gradients, GradientsFailed } from "../services/Gradients.ts"
import type { RunId } from "../services/JobStore.ts"
import type { RewardLoadError } from "../reward/RewardCheckpoint.ts"
import type { RewardModel, RewardRef } from "../services/RewardModel.ts"
import type { RunStore } from "../services/RunStore.ts"

export interface RunJob {
  readonly id: RunId
  /** The run folder (created before the run was queued). */
  readonly dir: string
  readonly plan: Plan
  readonly modelPath: string
}

/** How a run ended. */
export type RunOutcome =
  | { readonly _tag: "Finished" }
  /** It stopped at a step boundary on request and saved where it was. */
  | { readonly _tag: "Stopped" }
  | { readonly _tag: "Failed"; readonly message: string }
  /** Ended at once (kill): nothing saved beyond its last checkpoint. */
  | { readonly _tag: "Killed" }

export interface RunHandle {
  /** Asks the run to stop at its next step boundary, saving where it is. */
  readonly stop: Effect.Effect<void>
  /** Ends the run now. */
  readonly kill: Effect.Effect<void>
  /** Waits for the run to end. */
  readonly outcome: Effect.Effect<RunOutcome>
  /**
   * Stops following the run without stopping it, for a daemon shutting down while the run goes
   * on elsewhere (a cluster runner); its outcome becomes `Stopped`. Absent: the run lives in
   * this process, and a shutdown stops it.
   */
  readonly detach?: Effect.Effect<void>
}

/** The device is busy with other runs; try again when one ends. */
export class NoRoomYet extends Schema.TaggedError<NoRoomYet>()("NoRoomYet", { message: Schema.String }) {}

/** The run cannot start at all (its model is gone, it can never fit): it fails with this message. */
export class CannotStart extends Schema.TaggedError<CannotStart>()("CannotStart", { message: Schema.String }) {}

export class RunExecutor extends Context.Service<RunExecutor, {
  readonly start: (job: RunJob, onUpdate: (update: RunUpdate) => Effect.Effect<void>) => Effect.Effect<RunHandle, NoRoomYet | CannotStart>
}>()("simmer/RunExecutor") {}

/** The per-run live layers the local executor builds, as `simmer run` builds them. */
export interface LocalRunLayers {
  readonly store: (dir: string) => Layer.Layer<RunStore, FileSystemError | InvalidEventLog | { readonly _tag: "RunLocked"; readonly message: string }>
  readonly gradients: Layer.Layer<Gradients, GradientsFailed, Compute>
  /** The reward a plan's `reward:` list names (for GRPO), its reward models loaded per run. */
  readonly reward: (refs: ReadonlyArray<RewardRef>) => Layer.Layer<RewardModel, RewardLoadError, Compute>
}

const MIB = 2 ** 20

/**
 * Runs in this process, side by side as far as DeviceMemory allows. Each run's estimated peak
 * is reserved here, once, and the run gets a DeviceMemory of exactly that size, so its own
 * reservation (Run.ts) succeeds inside its share and never competes with the others'.
 */
export const localRunExecutor = (layers: LocalRunLayers): Layer.Layer<RunExecutor, never, DeviceMemory | Compute | Datasets> =>
  Layer.effect(
    RunExecutor,
    Effect.gen(function*() {
      const memory = yield* DeviceMemory
      const compute = yield* Compute
      const datasets = yield* Datasets
      // Runs belong to the executor: when it goes, whatever still runs ends.
      const runs = yield* Effect.scope

      const start = (job: RunJob, onUpdate: (update: RunUpdate) => Effect.Effect<void>) =>
        Effect.gen(function*() {
          const { config } = yield* readCheckpointConfig(job.modelPath).pipe(
            Effect.mapError((e) => new CannotStart({ message: e.message }))
          )
          const need = runFootprint(job.plan, config)
          const room = yield* Scope.make()
          yield* memory.reserve(`Run ${job.id}`, need, { advice: planMemoryAdvice(need) }).pipe(
            Scope.provide(room),
            Effect.catchTag("MemoryBudgetExceeded", (e) =>
              Effect.andThen(
                Scope.close(room, Exit.void),
                Effect.fail<NoRoomYet | CannotStart>(
                  e.requiredBytes > e.budgetBytes ? new CannotStart({ message: e.message }) : new NoRoomYet({ message: e.message })
                )
              ))
          )
          const share = yield* makeDeviceMemory(memory.kind, Math.max(1, Math.ceil(need.bytes / MIB)) * MIB, memory.room)
          const stop = yield* Deferred.make<void>()
          // A run asked to stop ends normally after logging `interrupted`; one that reached its
          // end before a step boundary is finished all the same.
          let interrupted = false
          const work = Effect.gen(function*() {
            const inference = yield* resolveInference(undefined, compute.backend)
            yield* recordInRunInfo(job.dir, { backend: compute.description, inference })
            yield* runUpdates({ plan: job.plan, modelPath: job.modelPath, stopRequested: Deferred.isDone(stop), inference }).pipe(
              Stream.runForEach((update) => {
                if (update._tag === "Event" && update.event.phase === "interrupted") interrupted = true
                return onUpdate(update)
              }),
              Effect.provide(
                Layer.mergeAll(layers.store(job.dir), layers.gradients, layers.reward(job.plan.reward ?? []), Layer.succeed(DeviceMemory, share))
              )
            )
            // The report describes the run as far as it went, as `simmer run` leaves it.
            yield* writeReport(job.dir).pipe(Effect.ignore)
          }).pipe(
            Effect.provideService(Compute, compute),
            Effect.provideService(Datasets, datasets),
            Effect.ensuring(Scope.close(room, Exit.void))
          )
          const fiber = yield* Effect.forkIn(work, runs)
          const outcome = Fiber.await(fiber).pipe(
            Effect.map((exit): RunOutcome =>
              Exit.isSuccess(exit)
                ? { _tag: interrupted ? "Stopped" : "Finished" }
                : Cause.hasInterruptsOnly(exit.cause)
                ? { _tag: "Killed" }
                : { _tag: "Failed", message: failureMessage(exit.cause) }
            )
          )
          return { stop: Deferred.succeed(stop, undefined).pipe(Effect.asVoid), kill: Fiber.interrupt(fiber), outcome } satisfies RunHandle
        })

      return RunExecutor.of({ start })
    })
  )
