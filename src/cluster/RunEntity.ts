/**
 * A run as an effect/cluster entity, addressed by its run id. `Execute` carries the run and is
 * persisted in the cluster's message storage: the shard manager delivers it to whichever live
 * runner owns the run's shard, and delivers it again to the next owner when that runner stops or
 * dies before replying, which continues the run from its folder on the shared directory. `Stop`
 * (at the next step boundary, saving) and `Kill` (at once) are volatile: they reach the runner
 * the run is on now, or nobody.
 */
import { Schema } from "effect"
import { ClusterSchema, Entity } from "effect/cluster"
import { Rpc } from "effect/rpc"

/** How a run ended on its runner (the executor's RunOutcome, as it travels). */
export const RunOutcomeSchema = Schema.Union([
  Schema.TaggedStruct("Finished", {}),
  Schema.TaggedStruct("Stopped", {}),
  Schema.TaggedStruct("Failed", { message: Schema.String }),
  Schema.TaggedStruct("Killed", {})
])

export const Execute = Rpc.make("Execute", { payload: { run: Schema.String }, success: RunOutcomeSchema }).pipe(
  (rpc) => rpc.annotate(ClusterSchema.Persisted, true),
  // The API may stop waiting (it shuts down, it detaches) without that interrupting the run:
  // a run is stopped only by `Stop` and `Kill`.
  (rpc) => rpc.annotate(ClusterSchema.Uninterruptible, "client"),
  // A run never ends by itself in time for a runner's shutdown or a rebalance: its entity is
  // interrupted at once (it then saves at a step boundary) and the message is left for the next owner.
  (rpc) => rpc.annotate(ClusterSchema.InterruptOnTermination, true)
)

/** True when a run was going on the runner and was asked. */
export const Stop = Rpc.make("Stop", { payload: { run: Schema.String }, success: Schema.Boolean }).annotate(ClusterSchema.Persisted, false)

export const Kill = Rpc.make("Kill", { payload: { run: Schema.String }, success: Schema.Boolean }).annotate(ClusterSchema.Persisted, false)

export const RunEntity = Entity.make("SimmerRun", [Execute, Stop, Kill])
