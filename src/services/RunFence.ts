/**
 * RunFence: the fencing token that keeps a run on one machine at a time. A runner that takes a
 * run over acquires the run's next epoch; before every write into the run folder it checks that
 * its epoch is still the current one. A runner that was paused (SIGSTOP, a VM freeze, a network
 * partition) while its run moved elsewhere finds a newer epoch and is refused, so its late
 * writes never land in the folder the new owner is writing. layers/RunFence.ts keeps the epochs
 * in Postgres, beside the cluster's own tables.
 */
import { Context, type Effect, Schema } from "effect"

/** Another runner took the run over: this one must not write into it any more. */
export class FencedOut extends Schema.TaggedError<FencedOut>()("FencedOut", {
  run: Schema.String,
  epoch: Schema.Number,
  current: Schema.Number,
  holder: Schema.String,
  message: Schema.String
}) {}

/** The fence's storage cannot be reached (after retrying): nothing may be written meanwhile. */
export class FenceUnavailable extends Schema.TaggedError<FenceUnavailable>()("FenceUnavailable", {
  run: Schema.String,
  message: Schema.String
}) {}

export interface FenceToken {
  readonly run: string
  readonly epoch: number
  readonly holder: string
}

export class RunFence extends Context.Service<RunFence, {
  /** Takes `run` over for `holder`: the run's epoch goes up by one and the new token is returned. */
  readonly acquire: (run: string, holder: string) => Effect.Effect<FenceToken, FenceUnavailable>
  /** Succeeds only while `token` is the run's current epoch. */
  readonly check: (token: FenceToken) => Effect.Effect<void, FencedOut | FenceUnavailable>
}>()("simmer/RunFence") {}
