/**
 * The side-by-side table of a run's strategies: the original, the Prune-Tune Loop and each
 * baseline, with final size, accuracy, tokens tuned on and wall time. The demo prints it and
 * the quality benchmark reads it.
 */
import type { RunEvent, Strategy } from "../io/RunEvent.ts"

export interface ComparisonRow {
  readonly strategy: string
  readonly nonEmbedding: number
  readonly share: number
  readonly metrics: Readonly<Record<string, number | undefined>>
  readonly tuningTokens: number
  readonly seconds: number
}

/** One row per strategy: its final size and accuracy, tokens tuned on and wall time. */
export const comparison = (events: ReadonlyArray<RunEvent>): Array<ComparisonRow> => {
  const original = events.find((e) => e.iteration === 0)?.parameters.nonEmbedding ?? 1
  const base = events.find((e) => e.strategy === "ptl" && e.iteration === 0 && e.phase === "evaluated")
  const rows: Array<ComparisonRow> = []
  if (base !== undefined) {
    rows.push({
      strategy: "original",
      nonEmbedding: base.parameters.nonEmbedding,
      share: 1,
      metrics: Object.fromEntries(Object.entries(base.metrics ?? {}).map(([k, m]) => [k, m.accuracy])),
      tuningTokens: 0,
      seconds: 0
    })
  }
  for (const strategy of [...new Set(events.map((e) => e.strategy))] as Array<Strategy>) {
    const own = events.filter((e) => e.strategy === strategy && e.iteration > 0)
    const finished = events.find((e) => e.strategy === strategy && e.phase === "finished")
    if (finished === undefined || own.length === 0) continue
    const times = own.map((e) => Date.parse(e.time))
    rows.push({
      strategy,
      nonEmbedding: finished.parameters.nonEmbedding,
      share: finished.parameters.nonEmbedding / original,
      metrics: Object.fromEntries(Object.entries(finished.metrics ?? {}).map(([k, m]) => [k, m.accuracy])),
      tuningTokens: own.reduce((sum, e) => sum + (e.phase === "tuned" ? e.tune?.tokens ?? 0 : 0), 0),
      seconds: own.reduce((sum, e) => sum + Object.values(e.timings ?? {}).reduce((a, b) => a + b, 0) * (e.phase === "accepted" || e.phase === "rolled-back" ? 1 : 0), 0) ||
        (Math.max(...times) - Math.min(...times)) / 1000
    })
  }
  return rows
}

export const formatComparison = (rows: ReadonlyArray<ComparisonRow>): string => {
  const datasets = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))]
  const header = ["", "non-embedding params", ...datasets.map((d) => `${d} acc`), "tuning tokens", "time"]
  const body = rows.map((r) => [
    r.strategy,
    `${r.nonEmbedding.toLocaleString("en-US")} (${(r.share * 100).toFixed(0)}%)`,
    ...datasets.map((d) => (r.metrics[d] === undefined ? "-" : `${(r.metrics[d]! * 100).toFixed(1)}%`)),
    r.tuningTokens.toLocaleString("en-US"),
    r.strategy === "original" ? "-" : `${r.seconds.toFixed(0)} s`
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)))
  return [header, ...body].map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ")).join("\n")
}
