/**
 * What report.html shows, computed from event logs: for every run and strategy a series of
 * attempts (one row per iteration and try), each with its outcome, size, metrics, tuning and
 * time per stage, plus the original model and the final accepted state.
 *
 * Events of one attempt are merged in log order: metrics and timings are merged key by key
 * (timings are "seconds so far", so the latest value wins), tuning and pruning come from the
 * last event that has them. A `finished` event forms no row; its metrics and size, when it
 * has them, override the final state's.
 */
import type { RunInfo } from "../io/RunInfo.ts"
import type { DatasetScore, Phase, RunEvent, Strategy } from "../io/RunEvent.ts"
import { Strategies } from "../io/RunEvent.ts"

export interface RunInput {
  /** Shown in legends and headings; the run folder's name. */
  readonly name: string
  readonly events: ReadonlyArray<RunEvent>
  /** plan.yaml as text, shown verbatim (and read for the model's name). */
  readonly plan?: string | undefined
  /** The run folder, absolute, for checkpoint paths. */
  readonly folder?: string | undefined
  /** run.json: the model path, creation time, simmer version and backend, when recorded. */
  readonly info?: RunInfo | undefined
}

export type Outcome = "original" | "accepted" | "rolled-back" | "interrupted" | "failed" | "in progress"

export interface Parameters {
  readonly total: number
  readonly nonEmbedding: number
}

export interface AttemptRow {
  readonly iteration: number
  readonly attempt: number
  readonly outcome: Outcome
  /** The phase of the attempt's last event. */
  readonly lastPhase: Phase
  /** Size of the model this attempt produced (for a rollback: the size that was tried). */
  readonly parameters: Parameters
  readonly metrics: Readonly<Record<string, DatasetScore>>
  readonly timings: Readonly<Record<string, number>>
  /** The attempt's last tuning (see `tunes` for every one). */
  readonly tune?: RunEvent["tune"]
  /** Every tuning of the attempt in order: one per tuner of the plan's list. */
  readonly tunes: ReadonlyArray<NonNullable<RunEvent["tune"]>>
  readonly pruned?: RunEvent["pruned"]
  readonly messages: ReadonlyArray<string>
  /** Stage folder (relative to the run folder) the attempt's model was saved to, if any. */
  readonly checkpoint?: string
  readonly firstTime: string
  readonly lastTime: string
}

export interface Series {
  readonly run: string
  readonly strategy: Strategy
  /** "ptl", or "run-a · ptl" when several runs are shown. */
  readonly label: string
  /** The model as loaded (iteration 0); the first event's size when the log has no iteration 0. */
  readonly original: Parameters
  readonly originalKnown: boolean
  readonly originalMetrics: Readonly<Record<string, DatasetScore>>
  readonly rows: ReadonlyArray<AttemptRow>
  /** The last accepted state (or the original when nothing was accepted), and where its checkpoint is (relative to the run folder). */
  readonly final: {
    readonly parameters: Parameters
    readonly metrics: Readonly<Record<string, DatasetScore>>
    readonly iteration: number
    readonly checkpoint: string | undefined
  }
  readonly finished: boolean
  /** The error the strategy last stopped on, when its last event says it failed (a resume may go on from there). */
  readonly failedMessage: string | undefined
  /** False when the strategy finished short of its target (every further step failed the gates), with why. */
  readonly targetReached: boolean
  readonly finishedMessage: string | undefined
  /** Seconds from the first to the last event, when the times parse. */
  readonly wallSeconds: number | undefined
}

export interface ReportModel {
  readonly runs: ReadonlyArray<{
    readonly name: string
    readonly plan?: string | undefined
    readonly folder?: string | undefined
    readonly info?: RunInfo | undefined
    /** Times of the run's first and last events. */
    readonly firstTime?: string | undefined
    readonly lastTime?: string | undefined
  }>
  readonly series: ReadonlyArray<Series>
  /** Dataset names with an accuracy anywhere, sorted. */
  readonly graded: ReadonlyArray<string>
  /** Dataset names with a perplexity anywhere, sorted. */
  readonly perplexity: ReadonlyArray<string>
}

const decisive = (phase: Phase): Outcome | undefined =>
  phase === "accepted"
    ? "accepted"
    : phase === "rolled-back"
    ? "rolled-back"
    : phase === "interrupted"
    ? "interrupted"
    : phase === "failed"
    ? "failed"
    : undefined

const mergeRecord = <A>(into: Record<string, A>, from: Readonly<Record<string, A>> | undefined) => {
  if (from !== undefined) for (const [k, v] of Object.entries(from)) into[k] = v
}

const rowOf = (events: ReadonlyArray<RunEvent>): AttemptRow => {
  const first = events[0]
  const last = events[events.length - 1]
  const metrics: Record<string, DatasetScore> = {}
  const timings: Record<string, number> = {}
  let tune: RunEvent["tune"]
  const tunes: Array<NonNullable<RunEvent["tune"]>> = []
  let pruned: RunEvent["pruned"]
  let outcome: Outcome | undefined
  let parameters: Parameters | undefined
  let checkpoint: string | undefined
  const messages: Array<string> = []
  for (const event of events) {
    // A `failed` event ends the attempt; its size and metrics are the kept model's, not the attempt's.
    if (event.phase === "failed") {
      outcome = "failed"
      if (event.message !== undefined && event.message !== "" && !messages.includes(event.message)) messages.push(event.message)
      continue
    }
    mergeRecord(metrics, event.metrics)
    mergeRecord(timings, event.timings)
    if (event.tune !== undefined) {
      tune = event.tune
      // The states after a tuning repeat its record; each tuning is its own `tuned` event.
      if (event.phase === "tuned") tunes.push(event.tune)
    }
    if (event.pruned !== undefined) pruned = event.pruned
    if (event.message !== undefined && event.message !== "" && !messages.includes(event.message)) messages.push(event.message)
    outcome = decisive(event.phase) ?? outcome
    if (event.phase !== "rolled-back") parameters = event.parameters
    if (event.checkpoint !== undefined) checkpoint = event.checkpoint
  }
  return {
    iteration: first.iteration,
    attempt: first.attempt,
    outcome: first.iteration === 0 && outcome !== "interrupted" && outcome !== "failed" ? "original" : outcome ?? "in progress",
    lastPhase: last.phase,
    parameters: parameters ?? last.parameters,
    metrics,
    timings,
    ...(tune !== undefined ? { tune } : {}),
    tunes,
    ...(pruned !== undefined ? { pruned } : {}),
    messages,
    ...(checkpoint !== undefined ? { checkpoint } : {}),
    firstTime: first.time,
    lastTime: last.time
  }
}

/**
 * Rows in order of first appearance of (iteration, attempt). An attempt that failed is over: the
 * same iteration and attempt tried again by a resume is a row of its own.
 */
const groupAttempts = (events: ReadonlyArray<RunEvent>): Array<AttemptRow> => {
  const groups: Array<Array<RunEvent>> = []
  const open = new Map<string, Array<RunEvent>>()
  for (const event of events) {
    const key = `${event.iteration}/${event.attempt}`
    let group = open.get(key)
    if (group === undefined) {
      group = []
      groups.push(group)
      open.set(key, group)
    }
    group.push(event)
    if (event.phase === "failed") open.delete(key)
  }
  return groups.map(rowOf)
}

const seconds = (from: string, to: string): number | undefined => {
  const a = Date.parse(from)
  const b = Date.parse(to)
  return Number.isFinite(a) && Number.isFinite(b) && b >= a ? (b - a) / 1000 : undefined
}

const seriesOf = (run: string, strategy: Strategy, events: ReadonlyArray<RunEvent>, label: string): Series => {
  const finishedEvents = events.filter((e) => e.phase === "finished")
  const rows = groupAttempts(events.filter((e) => e.phase !== "finished"))
  const originalRow = rows.find((row) => row.outcome === "original")
  const original = originalRow?.parameters ?? events[0].parameters
  const accepted = rows.filter((row) => row.outcome === "accepted" || row.outcome === "original")
  const lastAccepted = accepted[accepted.length - 1]
  const finalMetrics: Record<string, DatasetScore> = { ...(lastAccepted?.metrics ?? {}) }
  let finalParameters = lastAccepted?.parameters ?? original
  let finalCheckpoint = lastAccepted?.outcome === "accepted" ? lastAccepted.checkpoint : undefined
  for (const event of finishedEvents) {
    mergeRecord(finalMetrics, event.metrics)
    finalParameters = event.parameters
    if (event.checkpoint !== undefined) finalCheckpoint = event.checkpoint
  }
  return {
    run,
    strategy,
    label,
    original,
    originalKnown: originalRow !== undefined,
    originalMetrics: originalRow?.metrics ?? {},
    rows,
    final: { parameters: finalParameters, metrics: finalMetrics, iteration: lastAccepted?.iteration ?? 0, checkpoint: finalCheckpoint },
    finished: finishedEvents.length > 0,
    failedMessage: events.at(-1)?.phase === "failed" ? events.at(-1)?.message ?? "" : undefined,
    targetReached: finishedEvents.every((e) => e.targetReached !== false),
    finishedMessage: finishedEvents.find((e) => e.targetReached === false)?.message,
    wallSeconds: seconds(events[0].time, events[events.length - 1].time)
  }
}

/** Runs with the same name get " (2)", " (3)", ... so legends stay unambiguous. */
const uniqueNames = (names: ReadonlyArray<string>): Array<string> => {
  const seen = new Map<string, number>()
  return names.map((name) => {
    const n = (seen.get(name) ?? 0) + 1
    seen.set(name, n)
    return n === 1 ? name : `${name} (${n})`
  })
}

export const buildModel = (runs: ReadonlyArray<RunInput>): ReportModel => {
  const names = uniqueNames(runs.map((run) => run.name))
  const series: Array<Series> = []
  runs.forEach((run, i) => {
    const events = [...run.events].sort((a, b) => a.seq - b.seq)
    const own: Array<Series> = []
    for (const strategy of Strategies) {
      const strategyEvents = events.filter((e) => e.strategy === strategy)
      if (strategyEvents.length === 0) continue
      own.push(seriesOf(names[i], strategy, strategyEvents, runs.length > 1 ? `${names[i]} · ${strategy}` : strategy))
    }
    // A baseline logged without its own iteration 0 started from the same model as the loop.
    const known = own.find((s) => s.originalKnown)
    series.push(...own.map((s) =>
      s.originalKnown || known === undefined
        ? s
        : { ...s, original: known.original, originalKnown: true, originalMetrics: known.originalMetrics }
    ))
  })
  const datasets = (pick: (score: DatasetScore) => number | undefined) =>
    [...new Set(series.flatMap((s) => s.rows.flatMap((row) => Object.entries(row.metrics).filter(([, score]) => pick(score) !== undefined).map(([name]) => name))))]
      .sort()
  const timeRange = (events: ReadonlyArray<RunEvent>) => {
    const times = events.map((e) => e.time).filter((t) => Number.isFinite(Date.parse(t))).sort()
    return { firstTime: times[0], lastTime: times[times.length - 1] }
  }
  return {
    runs: runs.map((run, i) => ({ name: names[i], plan: run.plan, folder: run.folder, info: run.info, ...timeRange(run.events) })),
    series,
    graded: datasets((score) => score.accuracy),
    perplexity: datasets((score) => score.perplexity)
  }
}

/** Canonical stage order for timing columns and bar segments; unknown stages follow, sorted. */
export const stageOrder = ["score", "prune", "tune", "evaluate", "checkpoint"] as const

export const stagesOf = (rows: ReadonlyArray<AttemptRow>): Array<string> => {
  const keys = new Set(rows.flatMap((row) => Object.keys(row.timings)))
  const known: Array<string> = stageOrder.filter((k) => keys.has(k))
  return [...known, ...[...keys].filter((k) => !known.includes(k)).sort()]
}

/** The attempts whose state the loop kept: the original and every accepted one. */
export const keptStates = (series: Series): ReadonlyArray<AttemptRow> =>
  series.rows.filter((row) => row.outcome === "original" || row.outcome === "accepted")
