/**
 * The figures of report.html, as inline SVG: quality against size per dataset, tuning loss and
 * a tuner's own measurements per step, and time per stage. Each series keeps one colour, marker
 * and dash in every figure, so no series is told apart by colour alone.
 */
import type { DatasetScore } from "../io/RunEvent.ts"
import { accuracyText, attemptLabel, count, outcomeText, percent, percentOf, perplexityText } from "./ReportFormat.ts"
import { type AttemptRow, keptStates, type Parameters, type ReportModel, type Series, stagesOf } from "./ReportModel.ts"
import {
  type Bar,
  dashPatterns,
  escapeHtml as esc,
  type LineSeries,
  lineChart,
  markerShapes,
  palette,
  type Point,
  stackedBarChart
} from "./SvgPlot.ts"

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

const figure = (title: string, svg: string, caption?: string): string =>
  `<figure><figcaption><b>${esc(title)}</b>${caption !== undefined ? ` <span class="caption">${esc(caption)}</span>` : ""}</figcaption>${svg}</figure>`

export const sizeVsMetricPlots = (model: ReportModel): string => {
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

/** How a figure names what it plots: its title, its axis, and one value and several in sentences. */
interface StepWords {
  readonly title: string
  readonly axis: string
  readonly one: string
  readonly many: string
}

/**
 * A series' per-step values over its whole history, tunings concatenated in order: dashed rules
 * where an iteration starts, bands over rolled-back attempts, a moving average over long runs,
 * non-finite values marked above the plot.
 */
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

export const lossPlots = (model: ReportModel): string => {
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
export const metricPlots = (model: ReportModel): string => {
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

export const timePlots = (model: ReportModel): string => {
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
