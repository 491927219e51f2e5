/**
 * What a running loop shows, as a consumer of the run's stream: on a terminal, a status line
 * redrawn in place (strategy, iteration k of N, phase, tuning step with rate and ETA, parameters
 * now vs original, last accuracy) above which accepted, rolled-back and final states are
 * printed; otherwise one plain line per event; with --json, the NDJSON events on stdout.
 */
import { join } from "node:path"
import type { RunEvent } from "../io/RunEvent.ts"
import type { RunUpdate, TuneProgress } from "../pipeline/RunUpdate.ts"

export type ViewMode = "tty" | "plain" | "json"

const pct = (x: number) => `${(x * 100).toFixed(1)}%`

export const metricsText = (metrics: RunEvent["metrics"]) =>
  Object.entries(metrics ?? {})
    .map(([name, m]) => m.accuracy !== undefined ? `${name} ${pct(m.accuracy)}` : `${name} ppl ${m.perplexity?.toFixed(2)}`)
    .join(", ")

/** What a run prints at its end for each strategy that finished: its size, metrics and final checkpoint under `dir`. */
export const finishedLine = (event: RunEvent, dir: string) =>
  `${event.strategy}: ${event.parameters.nonEmbedding.toLocaleString("en-US")} non-embedding parameters, ${metricsText(event.metrics)}; ` +
  `checkpoint ${join(dir, event.checkpoint ?? "")}${event.targetReached === false ? ` (${event.message})` : ""}`

const clock = (seconds: number) =>
  Number.isFinite(seconds) ? `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}` : "-:--"

export interface RunView {
  readonly show: (update: RunUpdate) => void
  /** A line from outside the run (a watcher's connection), printed above the status line. */
  readonly note: (line: string) => void
  readonly done: () => void
}

/** `original`: non-embedding parameters of the original model, when a resumed run already logged it. */
export const makeRunView = (
  mode: ViewMode,
  iterations: number,
  original?: number,
  streams: { readonly out: NodeJS.WriteStream; readonly err: NodeJS.WriteStream } = { out: process.stdout, err: process.stderr }
): RunView => {
  const stream = streams.err
  let status = ""
  // The last evaluation and the state it was measured on: shown as such beside a later state's size.
  let lastMeasured: { readonly text: string; readonly on: RunEvent } | undefined
  const redraw = () => {
    if (mode === "tty") stream.write(`\r\x1b[2K${status}`)
  }
  const println = (line: string) => {
    if (mode === "tty") stream.write(`\r\x1b[2K${line}\n${status}`)
    else stream.write(`${line}\n`)
  }
  const size = (event: RunEvent) => {
    original ??= event.parameters.nonEmbedding
    return `${event.parameters.nonEmbedding.toLocaleString("en-US")} non-embedding parameters (${pct(event.parameters.nonEmbedding / original)})`
  }
  const whereOf = (e: { strategy: string; iteration: number; attempt: number }) => {
    const planned = e.strategy === "ptl" ? iterations : 1
    // A halved step leaves part of the way to the next iteration, so a run can need more than planned.
    const of = e.iteration <= planned ? `/${planned}` : ` (${planned} planned)`
    return `${e.strategy} iteration ${e.iteration}${of}` + (e.attempt > 0 ? ` (attempt ${e.attempt + 1})` : "")
  }
  const onEvent = (event: RunEvent) => {
    if (mode === "json") {
      streams.out.write(JSON.stringify(event) + "\n")
      return
    }
    if (event.metrics !== undefined && ["evaluated", "accepted", "finished", "failed"].includes(event.phase)) {
      lastMeasured = { text: metricsText(event.metrics), on: event }
    }
    const where = whereOf(event)
    const on = lastMeasured?.on
    const measured = lastMeasured === undefined || lastMeasured.text === ""
      ? ""
      : on!.strategy === event.strategy && on!.iteration === event.iteration && on!.attempt === event.attempt &&
          on!.parameters.nonEmbedding === event.parameters.nonEmbedding
      ? ` — ${lastMeasured.text}`
      : ` — last evaluated: ${whereOf(on!)} at ${pct(on!.parameters.nonEmbedding / (original ?? on!.parameters.nonEmbedding))}, ${lastMeasured.text}`
    status = `${where}: ${event.phase} — ${size(event)}${measured}`
    const important = ["accepted", "rolled-back", "finished", "interrupted", "failed"].includes(event.phase)
    if (mode === "plain" || important) {
      const note = event.message !== undefined
        ? ` — ${event.message}`
        : event.checkpoint !== undefined && event.phase === "accepted"
        ? ` — saved ${event.checkpoint}`
        : ""
      println(`${where}: ${event.phase} — ${size(event)}${event.metrics ? ` — ${metricsText(event.metrics)}` : ""}${note}`)
    } else redraw()
  }
  // The first step this view saw of the current tuning: a resumed tuning starts mid-way.
  let tuningKey = ""
  let firstStep = 0
  const onStep = (p: TuneProgress) => {
    if (mode !== "tty") return
    const key = `${p.strategy} ${p.iteration} ${p.attempt} ${p.position}`
    if (key !== tuningKey) [tuningKey, firstStep] = [key, p.step - 1]
    const rate = p.seconds > 0 ? (p.step - firstStep) / p.seconds : 0
    const eta = rate > 0 ? (p.steps - p.step) / rate : Infinity
    const base = status.replace(/ — tuning .*$/, "")
    status = `${base} — tuning ${p.tuner} step ${p.step}/${p.steps} loss ${p.loss.toFixed(3)} eta ${clock(eta)}`
    redraw()
  }
  return {
    show: (update) => (update._tag === "Event" ? onEvent(update.event) : onStep(update.progress)),
    note: println,
    done: () => {
      if (mode === "tty") stream.write("\r\x1b[2K")
    }
  }
}
