/**
 * How report.html writes numbers and names as text: sizes, counts, percentages, metrics,
 * durations, what a pruning step removed, attempt labels and outcomes. Plain text, not HTML.
 */
import type { RunEvent } from "../io/RunEvent.ts"
import type { Outcome } from "./ReportModel.ts"

export const human = (n: number): string =>
  !Number.isFinite(n)
    ? String(n)
    : Math.abs(n) >= 1e9
    ? `${(n / 1e9).toFixed(2)}B`
    : Math.abs(n) >= 1e6
    ? `${(n / 1e6).toFixed(2)}M`
    : Math.abs(n) >= 1e3
    ? `${(n / 1e3).toFixed(1)}K`
    : `${n}`

export const count = (n: number): string => Number.isFinite(n) ? n.toLocaleString("en-US") : String(n)

export const fixed = (v: number, digits: number): string => Number.isFinite(v) ? v.toFixed(digits) : String(v)

export const percentOf = (part: number, whole: number): number => (part / whole) * 100

export const percent = (v: number): string => Number.isFinite(v) ? `${v.toFixed(1)}%` : "—"

export const accuracyText = (a: number | undefined): string => a === undefined ? "—" : Number.isFinite(a) ? `${(a * 100).toFixed(1)}%` : String(a)

export const perplexityText = (p: number | undefined): string => p === undefined ? "—" : fixed(p, p >= 100 ? 1 : 3)

export const duration = (s: number): string => {
  if (!Number.isFinite(s)) return String(s)
  if (s < 10) return `${s.toFixed(1)} s`
  if (s < 120) return `${s.toFixed(0)} s`
  if (s < 7200) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`
  return `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")} min`
}

export const seconds = (s: number | undefined): string => s === undefined ? "" : Number.isFinite(s) ? s.toFixed(s < 10 ? 2 : 1) : String(s)

const unitNouns: Record<string, string> = { neurons: "neurons", heads: "key/value groups", layers: "layers" }

/** What a pruning step removed, each kind on its own: "516 neurons and 4 key/value groups". */
export const removedText = (pruned: NonNullable<RunEvent["pruned"]>): string =>
  Object.entries(pruned.perUnit ?? { [pruned.unit]: pruned.removed }).map(([unit, n]) => `${count(n)} ${unitNouns[unit] ?? unit}`).join(" and ")

/** "3" for the first try of iteration 3, "3b" for the second, ... */
export const attemptLabel = (row: { iteration: number; attempt: number }): string =>
  row.attempt === 0 ? String(row.iteration) : `${row.iteration}${row.attempt < 25 ? String.fromCharCode(97 + row.attempt) : `.${row.attempt}`}`

export const outcomeText: Record<Outcome, string> = {
  original: "original",
  accepted: "accepted",
  "rolled-back": "rolled back",
  interrupted: "interrupted",
  failed: "failed",
  "in progress": "in progress"
}

export const signed = (v: number, digits: number): string => Number.isFinite(v) ? `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}` : String(v)
