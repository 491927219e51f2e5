/**
 * Where a run stands, for its status page and the run list: the summary of its logged events
 * (kept in the job store, so a list never reads event logs) and, while it tunes, the rate and
 * ETA of the tuning in progress from its live steps (never logged, so held in memory only).
 */
import type { RunEvent } from "../io/RunEvent.ts"
import type { TuneProgress } from "../pipeline/RunUpdate.ts"
import type { LoggedProgress, StrategyOutcome } from "../services/JobStore.ts"
import type { TuningProgress } from "./Api.ts"

/** The summary after `event`, given the one before it and the original model's non-embedding parameters. */
export const progressAfter = (previous: LoggedProgress | undefined, event: RunEvent, original: number): LoggedProgress => {
  const acceptedStage = event.phase === "accepted" || event.phase === "finished" ? event.checkpoint ?? previous?.acceptedStage : previous?.acceptedStage
  const ended = event.phase === "finished" || event.phase === "failed"
  const share = original > 0 ? event.parameters.nonEmbedding / original : 1
  // Metrics belong to the size they were measured on: a rolled-back event carries the candidate's
  // metrics beside the accepted model's size, and is no measurement of it.
  const measured = event.metrics !== undefined && ["evaluated", "accepted", "finished", "failed"].includes(event.phase)
  const measuredOn = measured ? { strategy: event.strategy, iteration: event.iteration, attempt: event.attempt, share } : previous?.measuredOn
  const results = ended ? { ...previous?.results, [event.strategy]: outcomeOf(event, original) } : previous?.results
  return {
    seq: event.seq,
    strategy: event.strategy,
    iteration: event.iteration,
    attempt: event.attempt,
    phase: event.phase,
    share,
    metrics: measured ? event.metrics ?? {} : previous?.metrics ?? {},
    ...(measuredOn !== undefined ? { measuredOn } : {}),
    tuningTokens: (previous?.tuningTokens ?? 0) + (event.phase === "tuned" ? event.tune?.tokens ?? 0 : 0),
    ...(acceptedStage !== undefined ? { acceptedStage } : {}),
    ...(results !== undefined ? { results } : {})
  }
}

/** A strategy's result from its `finished` or `failed` event. */
const outcomeOf = (event: RunEvent, original: number): StrategyOutcome => ({
  status: event.phase === "failed" ? "failed" : "finished",
  targetReached: event.phase === "finished" && event.targetReached !== false,
  share: original > 0 ? event.parameters.nonEmbedding / original : 1,
  metrics: event.metrics ?? {},
  ...(event.checkpoint !== undefined ? { checkpoint: event.checkpoint } : {}),
  ...(event.message !== undefined ? { message: event.message } : {})
})

/** The summary of a whole event log (a run that starts again continues from it). */
export const progressOfLog = (events: ReadonlyArray<RunEvent>): LoggedProgress | undefined => {
  const original = events[0]?.parameters.nonEmbedding ?? 0
  return events.reduce<LoggedProgress | undefined>((progress, event) => progressAfter(progress, event, original), undefined)
}

/**
 * Whether `progress.metrics` were measured on the state it describes; when not (a pruned or
 * tuning model, another strategy), they must be shown as the last evaluation, with its size.
 */
export const measuredHere = (progress: LoggedProgress): boolean => {
  const on = progress.measuredOn
  return on === undefined ||
    (on.strategy === progress.strategy && on.iteration === progress.iteration && on.attempt === progress.attempt && on.share === progress.share)
}

/** Follows one run's tuning steps and says how fast it goes. */
export const makeTuningMeter = () => {
  // The first step seen of the current tuning: a resumed tuning starts mid-way, and its
  // `seconds` count from the resumption.
  let key = ""
  let firstStep = 0
  let tokens = 0
  let tuningTokens = 0
  let current: TuningProgress | undefined
  return {
    step: (p: TuneProgress): TuningProgress => {
      const k = `${p.strategy} ${p.iteration} ${p.attempt} ${p.position}`
      if (k !== key) [key, firstStep, tokens] = [k, p.step - 1, 0]
      tokens += p.tokens
      tuningTokens = p.tuningTokens
      const stepsPerSecond = p.seconds > 0 ? (p.step - firstStep) / p.seconds : 0
      current = {
        tuner: p.tuner,
        step: p.step,
        steps: p.steps,
        loss: p.loss,
        stepsPerSecond,
        tokensPerSecond: p.seconds > 0 ? tokens / p.seconds : 0,
        ...(stepsPerSecond > 0 ? { etaSeconds: (p.steps - p.step) / stepsPerSecond } : {})
      }
      return current
    },
    /** Tokens tuned in the current tuning so far, steps before a resume included (not yet in the log). */
    get tokens() {
      return current === undefined ? 0 : tuningTokens
    },
    get current() {
      return current
    },
    /** A logged state ends the tuning the steps belonged to. */
    reset: () => {
      key = ""
      tokens = 0
      current = undefined
    }
  }
}
export type TuningMeter = ReturnType<typeof makeTuningMeter>
