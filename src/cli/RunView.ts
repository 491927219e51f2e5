/**
 * What a running loop shows: on a terminal, a status line redrawn in place (strategy, iteration
 * k of N, phase, tuning step with ETA, parameters now vs original, last accuracy) above which
 * accepted and rolled-back iterations are printed; otherwise one plain line per event; with
 * --json, the NDJSON events on stdout.
 */
import type { ModelState } from "../pipeline/ModelState.ts"
import type { RunEvent } from "../io/RunEvent.ts"

export type ViewMode = "tty" | "plain" | "json"

const pct = (x: number) => `${(x * 100).toFixed(1)}%`

const metricsText = (metrics: RunEvent["metrics"]) =>
  Object.entries(metrics ?? {})
    .map(([name, m]) => m.accuracy !== undefined ? `${name} ${pct(m.accuracy)}` : `${name} ppl ${m.perplexity?.toFixed(2)}`)
    .join(", ")

const clock = (seconds: number) =>
  Number.isFinite(seconds) ? `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}` : "-:--"

/** `original`: non-embedding parameters of the original model, when a resumed run already logged it. */
export const makeRunView = (mode: ViewMode, iterations: number, original?: number, stream: NodeJS.WriteStream = process.stderr) => {
  let status = ""
  let tuneStarted = 0
  let lastMetrics = ""
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
  return {
    onState: (_state: ModelState, event: RunEvent) => {
      if (mode === "json") {
        process.stdout.write(JSON.stringify(event) + "\n")
        return
      }
      if (event.metrics !== undefined) lastMetrics = metricsText(event.metrics)
      const planned = event.strategy === "ptl" ? iterations : 1
      // A halved step leaves part of the way to the next iteration, so a run can need more than planned.
      const of = event.iteration <= planned ? `/${planned}` : ` (${planned} planned)`
      const where = `${event.strategy} iteration ${event.iteration}${of}` +
        (event.attempt > 0 ? ` (attempt ${event.attempt + 1})` : "")
      status = `${where}: ${event.phase} — ${size(event)}${lastMetrics ? ` — ${lastMetrics}` : ""}`
      if (event.phase === "pruned") tuneStarted = performance.now()
      const important = ["accepted", "rolled-back", "finished", "interrupted"].includes(event.phase)
      if (mode === "plain" || important) {
        const note = event.message !== undefined ? ` — ${event.message}` : event.checkpoint !== undefined && event.phase === "accepted" ? ` — saved ${event.checkpoint}` : ""
        println(`${where}: ${event.phase} — ${size(event)}${event.metrics ? ` — ${metricsText(event.metrics)}` : ""}${note}`)
      } else redraw()
    },
    onTuneStep: (step: number, steps: number, loss: number) => {
      if (mode !== "tty") return
      const elapsed = (performance.now() - tuneStarted) / 1000
      const eta = step > 0 ? (elapsed / step) * (steps - step) : Infinity
      const base = status.replace(/ — tuning step .*$/, "")
      status = `${base} — tuning step ${step}/${steps} loss ${loss.toFixed(3)} eta ${clock(eta)}`
      redraw()
    },
    done: () => {
      if (mode === "tty") stream.write("\r\x1b[2K")
    }
  }
}
