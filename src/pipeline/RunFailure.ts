/**
 * What a run that fails leaves behind — a gate with `onFailure: fail`, a reward model or a
 * tuning step that fails mid-run: a `failed` event with the error, and the strategy's entry in
 * result.json pointing at its last accepted checkpoint, so the report, `simmer report` and the
 * daemon's API say "failed" and why rather than "in progress". An interruption is no failure:
 * it saves and logs `interrupted` instead (Loop.ts).
 */
import { Cause, Effect } from "effect"
import type { RunEvent, Strategy } from "../io/RunEvent.ts"
import { RunStore } from "../services/RunStore.ts"

/** The message of whatever ended a run: a typed error's own paragraph, else the defect. */
export const failureMessage = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" && error.message !== ""
    ? error.message
    : Cause.pretty(cause)
}

/**
 * Logs `strategy`'s failure with `cause` and records it in result.json; returns the `failed`
 * event, or undefined when nothing was logged yet to attach it to. Its own failure (a full
 * disk) is logged as a warning: the run's error is what the caller reports.
 */
export const recordFailure = (strategy: Strategy, cause: Cause.Cause<unknown>, originalSize: number) =>
  Effect.gen(function*() {
    const store = yield* RunStore
    const events = yield* store.events
    const own = events.filter((e) => e.strategy === strategy)
    const last = own.at(-1) ?? events.at(-1)
    if (last === undefined) return undefined
    // The model the strategy keeps: its last accepted stage, else the original (iteration 0).
    const kept: RunEvent | undefined = own.findLast((e) => e.phase === "accepted" && e.checkpoint !== undefined) ??
      events.find((e) => e.strategy === "ptl" && e.iteration === 0 && e.phase === "accepted")
    const message = failureMessage(cause)
    // Like `finished`, it carries the model the strategy ends with: the kept one's size and metrics.
    const failed = yield* store.appendEvent({
      strategy,
      iteration: own.length > 0 ? last.iteration : 0,
      attempt: own.length > 0 ? last.attempt : 0,
      phase: "failed",
      parameters: kept?.parameters ?? last.parameters,
      ...(kept?.metrics !== undefined ? { metrics: kept.metrics } : {}),
      ...(kept?.checkpoint !== undefined ? { checkpoint: kept.checkpoint } : {}),
      message
    })
    if (kept?.checkpoint !== undefined) {
      yield* store.recordResult(strategy, {
        checkpoint: kept.checkpoint,
        iteration: kept.strategy === strategy ? kept.iteration : 0,
        parameters: kept.parameters,
        share: kept.parameters.nonEmbedding / originalSize,
        targetReached: false,
        metrics: kept.metrics ?? {},
        finishedAt: failed.time,
        status: "failed",
        error: message
      })
    }
    return failed
  }).pipe(
    Effect.catch((e) => Effect.as(Effect.logWarning(`the run's failure could not be recorded: ${e.message}`), undefined))
  )
