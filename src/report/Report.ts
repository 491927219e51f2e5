/**
 * report.html: one self-contained page (inline CSS and SVG, no script, no external assets) that
 * shows what a run did — per strategy a table of iterations and tries, and plots of accuracy
 * against non-embedding parameters, tuning loss per step and time per stage — for the run and
 * any runs it is compared with.
 *
 * `renderReport` is pure (events in, HTML out). `readEvents` decodes a run's events.ndjson
 * line by line and names the file and line of the first bad one; `writeReport` reads the run
 * folder(s) and replaces `<run>/report.html` (or the page asked for) atomically. The header
 * names what a reader needs to reproduce or find the result: simmer's version and the backend
 * each run used, when it ran, where each strategy's final checkpoint is, and whether compared
 * runs were evaluated the same way.
 */
import { readFile } from "node:fs/promises"
import { basename, join, resolve } from "node:path"
import { Effect, Option, Schema } from "effect"
import { parse as parseYaml } from "yaml"
import { writeFileAtomically } from "../io/AtomicWrite.ts"
import { describeCause, errnoCode, type FileSystemError } from "../io/Errors.ts"
import { eventsFileName, openRunFolder, planFileName } from "../io/RunFolder.ts"
import { readRunInfo } from "../io/RunInfo.ts"
import { comparabilityWarnings } from "./Comparable.ts"
import {
  type AttemptRow,
  buildModel,
  keptStates,
  type Outcome,
  type Parameters,
  type ReportModel,
  type RunInput,
  type Series,
  stagesOf
} from "./ReportModel.ts"
import type { RunEvent } from "../io/RunEvent.ts"
import { parseEventLog } from "../io/EventLog.ts"
import type { DatasetScore } from "../io/RunEvent.ts"
import {
  type Bar,
  dashPatterns,
  escapeHtml,
  type LineSeries,
  lineChart,
  markerShapes,
  palette,
  type Point,
  stackedBarChart
} from "./SvgPlot.ts"
import { finalCheckpointPath } from "./Summary.ts"

export type { RunInput } from "./ReportModel.ts"

/** A run folder or its events.ndjson cannot be read, or a line of the log is not a RunEvent. */
export class ReportError extends Schema.TaggedError<ReportError>()("ReportError", {
  path: Schema.String,
  /** 1-based line of events.ndjson, for a bad line. */
  line: Schema.optionalKey(Schema.Int),
  message: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------
// Formatting

const esc = escapeHtml

const human = (n: number): string =>
  !Number.isFinite(n)
    ? String(n)
    : Math.abs(n) >= 1e9
    ? `${(n / 1e9).toFixed(2)}B`
    : Math.abs(n) >= 1e6
    ? `${(n / 1e6).toFixed(2)}M`
    : Math.abs(n) >= 1e3
    ? `${(n / 1e3).toFixed(1)}K`
    : `${n}`

const count = (n: number): string => Number.isFinite(n) ? n.toLocaleString("en-US") : String(n)

const fixed = (v: number, digits: number): string => Number.isFinite(v) ? v.toFixed(digits) : String(v)

const percentOf = (part: number, whole: number): number => (part / whole) * 100

const percent = (v: number): string => Number.isFinite(v) ? `${v.toFixed(1)}%` : "—"

const accuracyText = (a: number | undefined): string => a === undefined ? "—" : Number.isFinite(a) ? `${(a * 100).toFixed(1)}%` : String(a)

const perplexityText = (p: number | undefined): string => p === undefined ? "—" : fixed(p, p >= 100 ? 1 : 3)

const duration = (s: number): string => {
  if (!Number.isFinite(s)) return String(s)
  if (s < 10) return `${s.toFixed(1)} s`
  if (s < 120) return `${s.toFixed(0)} s`
  if (s < 7200) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`
  return `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")} min`
}

const seconds = (s: number | undefined): string => s === undefined ? "" : Number.isFinite(s) ? s.toFixed(s < 10 ? 2 : 1) : String(s)

const unitNouns: Record<string, string> = { neurons: "neurons", heads: "key/value groups", layers: "layers" }

/** What a pruning step removed, each kind on its own: "516 neurons and 4 key/value groups". */
const removedText = (pruned: NonNullable<RunEvent["pruned"]>): string =>
  Object.entries(pruned.perUnit ?? { [pruned.unit]: pruned.removed }).map(([unit, n]) => `${count(n)} ${unitNouns[unit] ?? unit}`).join(" and ")

/** "3" for the first try of iteration 3, "3b" for the second, ... */
const attemptLabel = (row: { iteration: number; attempt: number }): string =>
  row.attempt === 0 ? String(row.iteration) : `${row.iteration}${row.attempt < 25 ? String.fromCharCode(97 + row.attempt) : `.${row.attempt}`}`

const outcomeText: Record<Outcome, string> = {
  original: "original",
  accepted: "accepted",
  "rolled-back": "rolled back",
  interrupted: "interrupted",
  failed: "failed",
  "in progress": "in progress"
}

const signed = (v: number, digits: number): string => Number.isFinite(v) ? `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}` : String(v)

// ---------------------------------------------------------------------------------------------
// Series styling: colour, marker and dash together, so no series is told apart by colour alone.

const lineColours = palette.filter((c) => c !== "#F0E442")

interface Style {
  readonly color: string
  readonly marker: (typeof markerShapes)[number]
  readonly dash: string | undefined
}

const styleOf = (i: number): Style => ({
  color: lineColours[i % lineColours.length],
  marker: markerShapes[i % markerShapes.length],
  dash: dashPatterns[i % dashPatterns.length]
})

const stageColours: Record<string, string> = {
  score: "#56B4E9",
  prune: "#D55E00",
  tune: "#0072B2",
  evaluate: "#009E73",
  checkpoint: "#E69F00"
}
const extraStageColours = ["#CC79A7", "#000000", "#F0E442", "#999999", "#666666"]

const stageColour = (stages: ReadonlyArray<string>) => (stage: string): string =>
  stageColours[stage] ??
    extraStageColours[stages.filter((s) => stageColours[s] === undefined).indexOf(stage) % extraStageColours.length]

// ---------------------------------------------------------------------------------------------
// Sections

/** The model named in plan.yaml (`model:`), if any plan can be read. */
const modelOf = (plan: string | undefined): string | undefined => {
  if (plan === undefined) return undefined
  try {
    const value: unknown = parseYaml(plan)
    const model = typeof value === "object" && value !== null ? (value as Record<string, unknown>).model : undefined
    return typeof model === "string" && model !== "" ? model : undefined
  } catch {
    return undefined
  }
}

/** How a strategy ended, as a person would act on it (HTML). */
const status = (model: ReportModel, s: Series): string => {
  const last = s.rows[s.rows.length - 1]
  if (s.finished) {
    return s.targetReached
      ? "finished"
      : `finished — <b>target not reached</b>${s.finishedMessage !== undefined ? `<br><span class="pct">${esc(s.finishedMessage)}</span>` : ""}`
  }
  if (s.failedMessage !== undefined) {
    const folder = model.runs.find((run) => run.name === s.run)?.folder ?? s.run
    return `<b>failed</b><br><span class="pct">${esc(s.failedMessage)}</span><br>` +
      `<span class="pct"><code>simmer resume ${esc(folder)}</code> tries again from the last accepted checkpoint</span>`
  }
  if (last?.outcome === "interrupted") {
    const folder = model.runs.find((run) => run.name === s.run)?.folder ?? s.run
    return `interrupted — <code>simmer resume ${esc(folder)}</code>`
  }
  return "in progress"
}

/** The states plotted for a series: the original (borrowed when the baseline logged none) and every accepted one. */
interface PlotState {
  readonly iteration: number
  readonly parameters: Parameters
  readonly metrics: Readonly<Record<string, DatasetScore>>
}

const plotStates = (s: Series): Array<PlotState> => {
  const kept: Array<PlotState> = [...keptStates(s)]
  if (!kept.some((row) => row.iteration === 0) && Object.keys(s.originalMetrics).length > 0) {
    kept.unshift({ iteration: 0, parameters: s.original, metrics: s.originalMetrics })
  }
  return kept
}

const metricChange = (
  before: DatasetScore | undefined,
  after: DatasetScore | undefined,
  kind: "accuracy" | "perplexity"
): string => {
  const a = before?.[kind]
  const b = after?.[kind]
  if (b === undefined) return "—"
  const now = kind === "accuracy" ? accuracyText(b) : perplexityText(b)
  if (a === undefined) return now
  const was = kind === "accuracy" ? accuracyText(a) : perplexityText(a)
  const delta = kind === "accuracy" ? `${signed((b - a) * 100, 1)} pts` : `${signed(b - a, 3)}`
  return `${was} → <b>${now}</b> <span class="delta">(${delta})</span>`
}

/** "2026-12-02 16:32 UTC" */
const dateText = (iso: string | undefined): string => {
  const t = iso === undefined ? Number.NaN : Date.parse(iso)
  return Number.isFinite(t) ? `${new Date(t).toISOString().slice(0, 16).replace("T", " ")} UTC` : "—"
}

/** Per run: when it ran, which simmer and backend (as run.json recorded them). */
const runFacts = (model: ReportModel): string =>
  model.runs.map((run) => {
    const info = run.info
    const made = info?.simmerVersion !== undefined ? `simmer ${info.simmerVersion}` : "simmer version not recorded"
    const backend = info?.backend !== undefined ? `backend ${info.backend}` : "backend not recorded"
    const pinned = (info?.hub ?? []).map((pin) => `${pin.kind} ${pin.id} at commit ${pin.commit}`)
    return `${model.runs.length > 1 ? `${esc(run.name)}: ` : ""}${esc(dateText(run.firstTime))} to ${esc(dateText(run.lastTime))}; ` +
      `${esc(made)}, ${esc(backend)}${pinned.length > 0 ? `; from the Hub: ${esc(pinned.join(", "))}` : ""}`
  }).join("<br>")

const header = (model: ReportModel, options: RenderOptions): string => {
  const models = [...new Set(model.runs.map((run) => modelOf(run.plan)).filter((m): m is string => m !== undefined))]
  const strategies = [...new Set(model.series.map((s) => s.strategy))]
  const rows = model.series.map((s) => {
    const accepted = s.rows.filter((r) => r.outcome === "accepted").length
    const rolledBack = s.rows.filter((r) => r.outcome === "rolled-back").length
    const tokens = s.rows.reduce((sum, r) => sum + r.tunes.reduce((n, t) => n + t.tokens, 0), 0)
    const stageSeconds = s.rows.reduce((sum, r) => sum + Object.values(r.timings).filter(Number.isFinite).reduce((a, b) => a + b, 0), 0)
    const cells = [
      `<th scope="row">${esc(s.label)}</th>`,
      `<td>${status(model, s)}</td>`,
      `<td class="num">${accepted} / ${rolledBack}</td>`,
      `<td class="num">${human(s.final.parameters.total)} <span class="pct">(${percent(percentOf(s.final.parameters.total, s.original.total))})</span></td>`,
      `<td class="num">${human(s.final.parameters.nonEmbedding)} <span class="pct">(${percent(percentOf(s.final.parameters.nonEmbedding, s.original.nonEmbedding))})</span></td>`,
      ...model.graded.map((d) => `<td class="num">${metricChange(s.originalMetrics[d], s.final.metrics[d], "accuracy")}</td>`),
      ...model.perplexity.map((d) => `<td class="num">${metricChange(s.originalMetrics[d], s.final.metrics[d], "perplexity")}</td>`),
      `<td class="num">${tokens > 0 ? human(tokens) : "—"}</td>`,
      `<td class="num">${stageSeconds > 0 ? duration(stageSeconds) : "—"}${
        s.wallSeconds !== undefined && s.wallSeconds > 0 ? ` <span class="pct">(wall ${duration(s.wallSeconds)})</span>` : ""
      }</td>`,
      `<td class="path">${esc(finalCheckpointPath(model, s) ?? "—")}${s.final.checkpoint === undefined ? ` <span class="pct">(the original)</span>` : ""}</td>`
    ]
    return `<tr>${cells.join("")}</tr>`
  })
  const head = [
    "Strategy",
    "Status",
    "Accepted / rolled back",
    "Parameters (of original)",
    "Non-embedding (of original)",
    ...model.graded.map((d) => `${d} accuracy`),
    ...model.perplexity.map((d) => `${d} perplexity`),
    "Tuning tokens",
    "Time in stages",
    "Final checkpoint"
  ]
  const originals = model.series.filter((s, i) => model.series.findIndex((o) => o.run === s.run) === i)
  const sizes = originals.map((s) =>
    `${model.runs.length > 1 ? `${esc(s.run)}: ` : ""}${human(s.original.total)} parameters, ${human(s.original.nonEmbedding)} non-embedding` +
    (s.originalKnown ? "" : " (no iteration 0 in the log: sizes are relative to the first event)")
  )
  return `<header>
<h1>simmer report${models.length > 0 ? `: ${esc(models.join(", "))}` : ""}</h1>
<dl class="facts">
<dt>Run${model.runs.length > 1 ? "s" : ""}</dt><dd>${model.runs.map((r, i) => `${esc(r.name)}${i > 0 ? " (compared)" : ""}`).join(", ") || "—"}</dd>
<dt>Model</dt><dd>${models.length > 0 ? esc(models.join(", ")) : "not named (no plan.yaml)"}</dd>
<dt>Original size</dt><dd>${sizes.join("; ") || "—"}</dd>
<dt>Strategies</dt><dd>${strategies.map(esc).join(", ") || "—"}</dd>
<dt>Ran</dt><dd>${runFacts(model)}</dd>
${options.generated !== undefined ? `<dt>Report</dt><dd>written ${esc(dateText(options.generated.time))} by simmer ${esc(options.generated.version)}</dd>` : ""}
</dl>
${options.warnings !== undefined && options.warnings.length > 0 ? options.warnings.map((w) => `<p class="warning">Note: ${esc(w)}.</p>`).join("\n") : ""}
${
    model.series.length === 0
      ? `<p class="note">No events yet: the run has not logged anything.</p>`
      : `<div class="scroll"><table class="summary"><thead><tr>${head.map((h) => `<th scope="col">${esc(h)}</th>`).join("")}</tr></thead>` +
        `<tbody>${rows.join("\n")}</tbody></table></div>
<p class="note">Final = the last accepted state. Accuracy changes are in percentage points. Time in stages sums the seconds
logged per stage; wall time runs from the first to the last event.</p>`
  }
</header>`
}

const figure = (title: string, svg: string, caption?: string): string =>
  `<figure><figcaption><b>${esc(title)}</b>${caption !== undefined ? ` <span class="caption">${esc(caption)}</span>` : ""}</figcaption>${svg}</figure>`

const sizeVsMetricPlots = (model: ReportModel): string => {
  const chart = (dataset: string, kind: "accuracy" | "perplexity") => {
    const series: Array<LineSeries> = model.series.map((s, i) => {
      const style = styleOf(i)
      const points: Array<Point> = plotStates(s).flatMap((state) => {
        const v = state.metrics[dataset]?.[kind]
        if (v === undefined) return []
        const x = percentOf(state.parameters.nonEmbedding, s.original.nonEmbedding)
        const y = kind === "accuracy" ? v * 100 : v
        const shown = kind === "accuracy" ? accuracyText(v) : perplexityText(v)
        return [{ x, y, title: `${s.label}, iteration ${state.iteration}: ${percent(x)} of non-embedding parameters, ${kind} ${shown}` }]
      })
      return { label: s.label, color: style.color, marker: style.marker, dash: style.dash, points }
    }).filter((s) => s.points.length > 0)
    return figure(
      `${dataset}: ${kind} vs size`,
      lineChart({
        ariaLabel: `${kind} on ${dataset} against non-embedding parameters, per strategy`,
        x: { label: "non-embedding parameters, % of original (model shrinks →)", reversed: true, domain: { clamp: [0, Infinity] } },
        y: kind === "accuracy"
          ? { label: "accuracy (%)", domain: { clamp: [0, 100] } }
          : { label: "perplexity (lower is better)", domain: { clamp: [0, Infinity] } },
        series,
        emptyText: `no ${kind} on ${dataset} in an accepted state`
      }),
      "accepted states only"
    )
  }
  const figures = [
    ...model.graded.map((d) => chart(d, "accuracy")),
    ...model.perplexity.map((d) => chart(d, "perplexity"))
  ]
  if (model.graded.length === 0) {
    figures.unshift(figure(
      "Accuracy vs size",
      lineChart({
        ariaLabel: "accuracy against non-embedding parameters (no data)",
        x: { label: "non-embedding parameters, % of original", reversed: true },
        y: { label: "accuracy (%)" },
        series: [],
        emptyText: "no graded metrics (accuracy) logged"
      })
    ))
  }
  return `<section><h2>Size vs quality</h2><div class="figures">${figures.join("\n")}</div></section>`
}

/** Centered moving average over the finite neighbours of each point (NaN where a point has none). */
const movingAverage = (values: ReadonlyArray<number>, window: number): Array<number> => {
  const half = Math.floor(window / 2)
  const prefix = [0]
  const counts = [0]
  for (const v of values) {
    prefix.push(prefix[prefix.length - 1] + (Number.isFinite(v) ? v : 0))
    counts.push(counts[counts.length - 1] + (Number.isFinite(v) ? 1 : 0))
  }
  return values.map((_, i) => {
    const lo = Math.max(0, i - half)
    const hi = Math.min(values.length, i + half + 1)
    const n = counts[hi] - counts[lo]
    return n > 0 ? (prefix[hi] - prefix[lo]) / n : Number.NaN
  })
}

/** At most `max` points: means of equal runs of steps (non-finite steps left out of the means). */
const downsample = (points: ReadonlyArray<Point>, max: number): Array<Point> => {
  if (points.length <= max) return [...points]
  const size = Math.ceil(points.length / max)
  const out: Array<Point> = []
  for (let i = 0; i < points.length; i += size) {
    const chunk = points.slice(i, i + size).filter((p) => Number.isFinite(p.y))
    const x = points[Math.min(points.length - 1, i + Math.floor(size / 2))].x
    out.push({ x, y: chunk.length > 0 ? chunk.reduce((sum, p) => sum + p.y, 0) / chunk.length : Number.NaN })
  }
  return out
}

/** One value per tuning step of one tuning of an attempt (a loss, a metric). */
interface StepValues {
  readonly row: AttemptRow
  readonly kind: string
  readonly values: ReadonlyArray<number>
}

/**
 * A series' per-step values over its whole history, tunings concatenated in order: dashed rules
 * where an iteration starts, bands over rolled-back attempts, a moving average over long runs,
 * non-finite values marked above the plot.
 */
/** How a figure names what it plots: its title, its axis, and one value and several in sentences. */
interface StepWords {
  readonly title: string
  readonly axis: string
  readonly one: string
  readonly many: string
}

const stepFigure = (s: Series, i: number, entries: ReadonlyArray<StepValues>, words: StepWords): string | undefined => {
  if (entries.length === 0) return undefined
  const style = styleOf(i)
  const raw: Array<Point> = []
  const rules: Array<{ x: number; label: string }> = []
  const bands: Array<{ from: number; to: number; title: string }> = []
  let previous: AttemptRow | undefined
  for (const { row, kind, values } of entries) {
    const start = raw.length + 1
    if (row !== previous) rules.push({ x: start - 0.5, label: attemptLabel(row) })
    values.forEach((v, k) => raw.push({ x: start + k, y: v, title: `iteration ${attemptLabel(row)}, ${kind} step ${k + 1}: ${words.one} ${v}` }))
    if (row.outcome === "rolled-back") bands.push({ from: start - 0.5, to: raw.length + 0.5, title: `iteration ${attemptLabel(row)}: rolled back` })
    previous = row
  }
  const nonFinite = raw.filter((p) => !Number.isFinite(p.y)).length
  const steps = raw.length
  const drawn = downsample(raw, 1500)
  // Per-step values are noisy: above ~180 steps a moving average carries the trend.
  const window = Math.round(steps / 60)
  const series: Array<LineSeries> = window >= 3
    ? [
      { label: `${s.label} (per step)`, color: style.color, points: drawn, width: 1, opacity: 0.3, hideInLegend: true },
      {
        label: `${s.label}: moving average of ${window} steps (faint: per step)`,
        color: style.color,
        points: downsample(movingAverage(raw.map((p) => p.y), window).map((y, k) => ({ x: raw[k].x, y })), 1500),
        width: 2
      }
    ]
    : [{ label: s.label, color: style.color, points: drawn, width: 1.8 }]
  const svg = lineChart({
    ariaLabel: `${words.title} per step of ${s.label}, iterations concatenated`,
    x: { label: "tuning step (all iterations in order)", domain: { integer: true, clamp: [0, Infinity] } },
    y: { label: words.axis },
    series,
    rules: rules.slice(1),
    bands,
    bandLegend: "rolled back",
    // Marked above the plot from the raw steps (the averages skip them).
    nonFinite: raw.filter((p) => !Number.isFinite(p.y)).slice(0, 500).map((p) => ({ x: p.x, title: p.title ?? "" })),
    nonFiniteLegend: `${words.one} NaN or infinite`,
    emptyText: `every logged ${words.one} is NaN or infinite`
  })
  const kinds = [...new Set(entries.map((e) => e.kind))]
  const caption = `${count(steps)} steps in ${entries.length} tuning run${entries.length === 1 ? "" : "s"}` +
    `${kinds.length > 1 ? ` (${kinds.join(", ")})` : ""}; dashed lines start an iteration` +
    (nonFinite > 0 ? `; ${count(nonFinite)} non-finite ${nonFinite === 1 ? words.one : words.many} (×)` : "")
  return figure(`${s.label}: ${words.title}`, svg, caption)
}

const lossPlots = (model: ReportModel): string => {
  const figures = model.series.flatMap((s, i) => {
    const entries = s.rows.flatMap((row) =>
      row.tunes.filter((t) => t.losses.length > 0).map((t) => ({ row, kind: t.kind ?? "tuning", values: t.losses })))
    return stepFigure(s, i, entries, { title: "tuning loss", axis: "training loss", one: "loss", many: "losses" }) ?? []
  })
  const body = figures.length > 0
    ? figures.join("\n")
    : figure(
      "Tuning loss",
      lineChart({
        ariaLabel: "tuning loss (no data)",
        x: { label: "tuning step" },
        y: { label: "training loss" },
        series: [],
        emptyText: "no tuning steps logged"
      })
    )
  return `<section><h2>Tuning loss</h2><div class="figures">${body}</div></section>`
}

/**
 * A tuner's own per-step measurements — GRPO's reward and its parts, rollout accuracy, KL, clip
 * fraction, completion length and rollout speed; distillation's KL; every tuner's gradient
 * norm — one figure per series and measurement. The learning rate is the plan's schedule, not a
 * measurement, and is left out.
 */
const metricPlots = (model: ReportModel): string => {
  const omitted = new Set(["lr", "ppoEpochs"])
  const figures = model.series.flatMap((s, i) => {
    const names = [...new Set(s.rows.flatMap((r) => r.tunes.flatMap((t) => Object.keys(t.metrics ?? {}))))].filter((n) => !omitted.has(n))
    return names.flatMap((name) => {
      const entries = s.rows.flatMap((row) =>
        row.tunes.flatMap((t) => (t.metrics?.[name] !== undefined ? [{ row, kind: t.kind ?? "tuning", values: t.metrics[name] }] : [])))
      return stepFigure(s, i, entries, { title: name, axis: name, one: `${name} value`, many: `${name} values` }) ?? []
    })
  })
  return figures.length > 0 ? `<section><h2>Tuning measurements</h2><div class="figures">${figures.join("\n")}</div></section>` : ""
}

const timePlots = (model: ReportModel): string => {
  const stages = stagesOf(model.series.flatMap((s) => s.rows))
  const colour = stageColour(stages)
  const segments = stages.map((key) => ({ key, color: colour(key) }))
  const figures = model.series.map((s) => {
    const bars: Array<Bar> = s.rows.filter((r) => Object.keys(r.timings).length > 0).map((r) => ({
      label: attemptLabel(r),
      values: r.timings,
      faded: r.outcome === "rolled-back",
      title: `${s.label}, iteration ${attemptLabel(r)} (${outcomeText[r.outcome]})`
    }))
    return figure(
      `${s.label}: time per stage`,
      stackedBarChart({
        ariaLabel: `seconds per stage and iteration of ${s.label}`,
        x: { label: "iteration (b, c, …: retry after a rollback)" },
        y: { label: "seconds" },
        segments,
        bars,
        fadedLegend: "faded: rolled back",
        emptyText: "no stage timings logged"
      })
    )
  })
  const body = figures.length > 0
    ? figures.join("\n")
    : figure(
      "Time per stage",
      stackedBarChart({
        ariaLabel: "seconds per stage (no data)",
        x: { label: "iteration" },
        y: { label: "seconds" },
        segments: [],
        bars: [],
        emptyText: "no stage timings logged"
      })
    )
  return `<section><h2>Time per stage</h2><div class="figures">${body}</div></section>`
}

const lastFiniteLoss = (row: AttemptRow): number | undefined => {
  const losses = row.tune?.losses ?? []
  for (let i = losses.length - 1; i >= 0; i--) if (Number.isFinite(losses[i])) return losses[i]
  return undefined
}

const iterationTable = (s: Series): string => {
  const datasets = [...new Set(s.rows.flatMap((r) => Object.keys(r.metrics)))].sort()
  const hasAccuracy = (d: string) => s.rows.some((r) => r.metrics[d]?.accuracy !== undefined)
  const hasPerplexity = (d: string) => s.rows.some((r) => r.metrics[d]?.perplexity !== undefined)
  const stages = stagesOf(s.rows)
  const metricColumns = datasets.flatMap((d) => [
    ...(hasAccuracy(d) ? [{ head: `${d} accuracy`, cell: (r: AttemptRow) => accuracyText(r.metrics[d]?.accuracy) }] : []),
    ...(hasPerplexity(d) ? [{ head: `${d} perplexity`, cell: (r: AttemptRow) => perplexityText(r.metrics[d]?.perplexity) }] : [])
  ])
  const head = [
    "Iteration",
    "Attempt",
    "Outcome",
    "Pruned",
    "Parameters (of original)",
    "Non-embedding (of original)",
    ...metricColumns.map((c) => c.head),
    "Tuning steps",
    "Tuning tokens",
    "Last loss",
    ...stages.map((k) => `${k} (s)`),
    "Total (s)",
    "Note"
  ]
  const rows = s.rows.map((r) => {
    const total = Object.values(r.timings).filter(Number.isFinite).reduce((a, b) => a + b, 0)
    const pruned = r.pruned === undefined
      ? ""
      : `<span${r.pruned.detail !== undefined ? ` title="${esc(r.pruned.detail)}"` : ""}>${esc(removedText(r.pruned))}</span>`
    const cells = [
      `<td class="num">${r.iteration}</td>`,
      `<td class="num">${r.attempt}</td>`,
      `<td><span class="badge ${r.outcome.replace(" ", "-")}">${esc(outcomeText[r.outcome])}</span>${
        r.outcome === "in progress" ? ` <span class="pct">(${esc(r.lastPhase)})</span>` : ""
      }</td>`,
      `<td class="num">${pruned}</td>`,
      `<td class="num" title="${esc(count(r.parameters.total))}">${human(r.parameters.total)} ` +
      `<span class="pct">(${percent(percentOf(r.parameters.total, s.original.total))})</span></td>`,
      `<td class="num" title="${esc(count(r.parameters.nonEmbedding))}">${human(r.parameters.nonEmbedding)} ` +
      `<span class="pct">(${percent(percentOf(r.parameters.nonEmbedding, s.original.nonEmbedding))})</span></td>`,
      ...metricColumns.map((c) => `<td class="num">${esc(c.cell(r))}</td>`),
      `<td class="num">${r.tune !== undefined ? count(r.tunes.reduce((n, t) => n + t.steps, 0)) : ""}</td>`,
      `<td class="num">${r.tune !== undefined ? human(r.tunes.reduce((n, t) => n + t.tokens, 0)) : ""}</td>`,
      `<td class="num">${r.tune !== undefined ? esc(fixed(lastFiniteLoss(r) ?? Number.NaN, 4)) : ""}</td>`,
      ...stages.map((k) => `<td class="num">${esc(seconds(r.timings[k]))}</td>`),
      `<td class="num">${total > 0 ? esc(seconds(total)) : ""}</td>`,
      `<td class="message">${r.messages.map(esc).join("<br>")}</td>`
    ]
    return `<tr class="${r.outcome.replace(" ", "-")}">${cells.join("")}</tr>`
  })
  return `<h3>${esc(s.label)}</h3>
<div class="scroll"><table class="iterations"><thead><tr>${head.map((h) => `<th scope="col">${esc(h)}</th>`).join("")}</tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table></div>`
}

const plans = (model: ReportModel): string => {
  const withPlan = model.runs.filter((run) => run.plan !== undefined)
  if (withPlan.length === 0) return ""
  return `<section><h2>Plan${withPlan.length > 1 ? "s" : ""}</h2>${
    withPlan.map((run) => `<details><summary>plan.yaml of ${esc(run.name)}</summary><pre>${esc(run.plan!)}</pre></details>`).join("\n")
  }</section>`
}

const css = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1b1b1b;
  background: #fafafa; margin: 0; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0 0 14px; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; }
.note, .caption { color: #555; font-size: 12.5px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; vertical-align: top; }
thead th { background: #f0f0f0; text-align: left; font-weight: 600; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.message { min-width: 18em; max-width: 32em; color: #444; }
td.path { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; min-width: 16em; }
p.warning { background: #fff4c7; border: 1px solid #e6d48a; padding: 6px 10px; margin: 8px 0; }
tbody th { text-align: left; white-space: nowrap; font-weight: 600; }
tr.rolled-back td { background: #f6f6f6; color: #666; }
.pct, .delta { color: #666; white-space: nowrap; }
table.summary td.num { white-space: normal; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; white-space: nowrap; }
.badge.original { background: #e8e8e8; }
.badge.accepted { background: #d8ecf7; color: #004a75; }
.badge.rolled-back { background: #fbe3d6; color: #8a3500; }
.badge.interrupted { background: #f3e0ec; color: #6d2a55; }
.badge.failed { background: #fde8e8; color: #a11; }
.badge.in-progress { background: #fff4c7; color: #5c4b00; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { box-sizing: border-box; margin: 0; background: #fff; border: 1px solid #ddd; padding: 8px; flex: 0 1 540px; min-width: 320px; }
figcaption { margin: 0 0 4px; font-size: 13px; }
svg.plot { display: block; width: 100%; height: auto; }
svg text { font-family: inherit; fill: #222; }
svg .tick { font-size: 11px; fill: #444; }
svg .label { font-size: 12px; }
svg .legend { font-size: 12px; }
svg .empty { font-size: 13px; fill: #777; }
svg .bar-total { font-size: 10px; fill: #444; }
svg .rule-label { font-size: 10px; fill: #666; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .axis { stroke: #888; stroke-width: 1; }
svg .rule { stroke: #999; stroke-width: 1; stroke-dasharray: 3 3; }
pre { background: #fff; border: 1px solid #ddd; padding: 8px; overflow-x: auto; font-size: 12.5px; }
`

export interface RenderOptions {
  /** When and by which simmer the page is written. */
  readonly generated?: { readonly time: string; readonly version: string }
  /** Sentences shown at the top (see Comparable). */
  readonly warnings?: ReadonlyArray<string>
}

/** The whole page for the given runs (the first is the run the report belongs to). */
export const renderReport = (runs: ReadonlyArray<RunInput>, options: RenderOptions = {}): string => {
  const model = buildModel(runs)
  const title = `simmer report — ${runs.map((r) => r.name).join(", ") || "no run"}`
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${css}</style>
</head>
<body>
${header(model, options)}
${model.series.length > 0 ? `${sizeVsMetricPlots(model)}\n${lossPlots(model)}\n${metricPlots(model)}\n${timePlots(model)}` : ""}
${model.series.length > 0 ? `<section><h2>Iterations</h2>${model.series.map(iterationTable).join("\n")}</section>` : ""}
${plans(model)}
</body>
</html>
`
}

// ---------------------------------------------------------------------------------------------
// Reading and writing run folders

/** Every event of an events.ndjson file, in file order (see EventLog). */
export const readEvents = Effect.fn("Report.readEvents")(function*(path: string): Effect.fn.Return<Array<RunEvent>, ReportError> {
  const text = yield* Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new ReportError({
        path,
        message: errnoCode(cause) === "ENOENT"
          ? `${path} does not exist: a run folder holds its event log in events.ndjson.`
          : `Cannot read ${path}: ${describeCause(cause)}.`
      })
  })
  return yield* parseEventLog(path, text).pipe(Effect.mapError((e) => new ReportError({ path, line: e.line, message: e.message })))
})

const readOptional = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8").catch((cause) => (errnoCode(cause) === "ENOENT" ? undefined : Promise.reject(cause))),
    catch: (cause) => new ReportError({ path, message: `Cannot read ${path}: ${describeCause(cause)}.` })
  })

/** A run folder's events, plan and run.json, named after the folder. */
export const readRun = Effect.fn("Report.readRun")(function*(folder: string): Effect.fn.Return<RunInput, ReportError> {
  yield* openRunFolder(folder, [eventsFileName]).pipe(Effect.mapError((e) => new ReportError({ path: e.path, message: e.message })))
  const events = yield* readEvents(join(folder, eventsFileName))
  const plan = yield* readOptional(join(folder, planFileName))
  // run.json is optional here: a report of a folder without one shows less.
  const info = yield* readRunInfo(folder).pipe(Effect.option)
  return { name: basename(resolve(folder)), events, plan, folder: resolve(folder), ...(Option.isSome(info) ? { info: info.value } : {}) }
})

export interface WriteReportOptions {
  /** The page to write; default `<runFolder>/report.html`. */
  readonly output?: string
  /** simmer's version, shown as the page's writer. */
  readonly version?: string
  /** What the page calls the runs, in order (a sweep's `scorer=wanda target=0.6`); default: their folders' names. */
  readonly names?: ReadonlyArray<string>
}

/** The report of the run and the runs compared with it, as a page, writing nothing (the daemon's GET). */
export const reportPage = Effect.fn("Report.reportPage")(function*(
  runFolder: string,
  compare: ReadonlyArray<string> = [],
  options: Pick<WriteReportOptions, "version" | "names"> = {}
): Effect.fn.Return<{ readonly html: string; readonly runs: ReadonlyArray<RunInput>; readonly warnings: ReadonlyArray<string> }, ReportError> {
  const read = yield* Effect.forEach([runFolder, ...compare], readRun)
  const runs = read.map((run, i) => ({ ...run, name: options.names?.[i] ?? run.name }))
  const warnings = comparabilityWarnings(runs)
  const generated = options.version !== undefined ? { time: new Date().toISOString(), version: options.version } : undefined
  return { html: renderReport(runs, { warnings, ...(generated !== undefined ? { generated } : {}) }), runs, warnings }
})

/**
 * Rebuilds the report (atomically) from the run and the runs compared with it; returns its path,
 * the runs read and what makes them hard to compare.
 */
export const buildReport = Effect.fn("Report.buildReport")(function*(
  runFolder: string,
  compare: ReadonlyArray<string> = [],
  options: WriteReportOptions = {}
): Effect.fn.Return<{ readonly path: string; readonly runs: ReadonlyArray<RunInput>; readonly warnings: ReadonlyArray<string> }, ReportError | FileSystemError> {
  const { html, runs, warnings } = yield* reportPage(runFolder, compare, options)
  const path = options.output ?? join(runFolder, "report.html")
  yield* writeFileAtomically(path, html)
  return { path, runs, warnings }
})

/** Rebuilds `<runFolder>/report.html` (atomically) from the run and the runs compared with it; returns its path. */
export const writeReport = (runFolder: string, compare: ReadonlyArray<string> = [], options: WriteReportOptions = {}) =>
  Effect.map(buildReport(runFolder, compare, options), (built) => built.path)
