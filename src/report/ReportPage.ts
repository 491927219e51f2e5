/**
 * report.html: one self-contained page (inline CSS and SVG, no script, no external assets) that
 * shows what a run did — per strategy a table of iterations and tries, and plots of accuracy
 * against non-embedding parameters, tuning loss per step and time per stage — for the run and
 * any runs it is compared with. Pure: events in, HTML out (WriteReport reads and writes).
 *
 * The header names what a reader needs to reproduce or find the result: simmer's version and
 * the backend each run used, when it ran, where each strategy's final checkpoint is, and
 * whether compared runs were evaluated the same way.
 */
import { parse as parseYaml } from "yaml"
import type { DatasetScore } from "../io/RunEvent.ts"
import { lossPlots, metricPlots, sizeVsMetricPlots, timePlots } from "./ReportFigures.ts"
import {
  accuracyText,
  count,
  duration,
  fixed,
  human,
  outcomeText,
  percent,
  percentOf,
  perplexityText,
  removedText,
  seconds,
  signed
} from "./ReportFormat.ts"
import { type AttemptRow, buildModel, type ReportModel, type RunInput, type Series, stagesOf } from "./ReportModel.ts"
import { css } from "./ReportStyle.ts"
import { escapeHtml as esc } from "./SvgPlot.ts"
import { finalCheckpointPath } from "./Summary.ts"

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
