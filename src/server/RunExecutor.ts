/**
 * RunExecutor: the seam between the daemon's queue and the place a run computes. The scheduler
 * asks it to start a run (it answers "no room yet" when the device cannot hold the run beside
 * the ones already going), passes each update on as it happens, and can ask a run to stop at
 * its next step boundary or end it at once. The daemon's executor runs each run in its own
 * process (ProcessRunExecutor.ts); the cluster's sends each to a runner (cluster/), which runs
 * it in a process of its own the same way.
 */
import { Context, Effect, Schema } from "effect"
import type { Plan } from "../pipeline/Plan.ts"
import type { RunUpdate } from "../pipeline/RunUpdate.ts"
import type { RunId } from "../services/JobStore.ts"

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
