/**
 * The few lines `simmer report` prints in the terminal, so a comparison can be read without
 * opening the page: per strategy its status, the share of the non-embedding parameters it
 * ended at, its final metrics and where its final checkpoint is.
 */
import { isAbsolute, join } from "node:path"
import type { ReportModel, Series } from "./ReportModel.ts"

/** Where a series' final model is: its accepted checkpoint in the run folder, else the original model. */
export const finalCheckpointPath = (model: ReportModel, series: Series): string | undefined => {
  const run = model.runs.find((r) => r.name === series.run)
  const stage = series.final.checkpoint
  if (stage === undefined) return run?.info?.modelPath
  return run?.folder !== undefined && !isAbsolute(stage) ? join(run.folder, stage) : stage
}

const metricsText = (series: Series): string =>
  Object.entries(series.final.metrics).sort(([a], [b]) => a.localeCompare(b)).map(([dataset, score]) =>
    score.accuracy !== undefined
      ? `${dataset} ${(score.accuracy * 100).toFixed(1)}%`
      : score.perplexity !== undefined
      ? `${dataset} perplexity ${score.perplexity.toFixed(2)}`
      : dataset
  ).join(", ")

export interface SummaryRow {
  readonly label: string
  readonly finished: boolean
  /** The error the strategy failed with (absent unless its last event is `failed`). */
  readonly failed?: string
  readonly nonEmbeddingShare: number
  readonly metrics: Readonly<Record<string, { readonly accuracy?: number; readonly perplexity?: number; readonly examples: number }>>
  readonly checkpoint: string | undefined
}

export const summaryRows = (model: ReportModel): Array<SummaryRow> =>
  model.series.map((s) => ({
    label: s.label,
    finished: s.finished,
    ...(s.failedMessage !== undefined ? { failed: s.failedMessage } : {}),
    nonEmbeddingShare: s.final.parameters.nonEmbedding / s.original.nonEmbedding,
    metrics: s.final.metrics,
    checkpoint: finalCheckpointPath(model, s)
  }))

export const summaryText = (model: ReportModel): string =>
  model.series.map((s) => {
    const share = `${((s.final.parameters.nonEmbedding / s.original.nonEmbedding) * 100).toFixed(1)}% of the non-embedding parameters`
    const metrics = metricsText(s)
    const checkpoint = finalCheckpointPath(model, s)
    const state = s.finished ? "finished" : s.failedMessage !== undefined ? "failed" : "not finished"
    return `${s.label}: ${state}, ${share}${metrics !== "" ? `, ${metrics}` : ""}` +
      (checkpoint !== undefined ? `; final model ${checkpoint}` : "") +
      (s.failedMessage !== undefined ? `\n  failed: ${s.failedMessage.split("\n")[0]}` : "")
  }).join("\n")
