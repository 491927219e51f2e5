/**
 * Whether runs shown side by side were measured the same way. Accuracy on 32 examples and on
 * 500, or on another seed's test split, is not comparable, and a comparison must say so rather
 * than let a reader take the difference for the method's. Judged from what the runs logged
 * (datasets and example counts of their evaluations) and from their plans' evaluation data.
 */
import { parse as parseYaml } from "yaml"
import type { RunInput } from "./ReportModel.ts"

/** "arith ×500, program ×500": every dataset a run evaluated on, with its example counts. */
const evaluatedSets = (run: RunInput): string => {
  const counts = new Map<string, Set<number>>()
  for (const event of run.events) {
    for (const [dataset, score] of Object.entries(event.metrics ?? {})) {
      counts.set(dataset, (counts.get(dataset) ?? new Set()).add(score.examples))
    }
  }
  return [...counts.entries()].sort(([a], [b]) => a.localeCompare(b))
    .map(([dataset, n]) => `${dataset} ×${[...n].sort((a, b) => a - b).join("/")}`).join(", ") || "nothing"
}

/** JSON with sorted keys, so equal data compares equal. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_, v: unknown) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v)

/** The plan's evaluation data (`data.evaluate` and `data.evaluationExamples`), when its plan can be read. */
const plannedEvaluation = (run: RunInput): string | undefined => {
  if (run.plan === undefined) return undefined
  try {
    const data = (parseYaml(run.plan) as { data?: { evaluate?: unknown; evaluationExamples?: unknown } } | null)?.data
    return data === undefined ? undefined : canonical({ evaluate: data.evaluate, examples: data.evaluationExamples })
  } catch {
    return undefined
  }
}

/** Sentences about what differs between the runs' evaluations; empty when they match (or there is one run). */
export const comparabilityWarnings = (runs: ReadonlyArray<RunInput>): Array<string> => {
  if (runs.length < 2) return []
  const warnings: Array<string> = []
  const sets = runs.map(evaluatedSets)
  if (new Set(sets).size > 1) {
    warnings.push(
      `the runs were evaluated on different datasets or numbers of examples (${runs.map((r, i) => `${r.name}: ${sets[i]}`).join("; ")}), ` +
        "so their accuracies are not directly comparable"
    )
  }
  const planned = runs.map(plannedEvaluation)
  const known = planned.filter((p): p is string => p !== undefined)
  if (new Set(known).size > 1) {
    warnings.push(
      `the plans name different evaluation data (${runs.flatMap((r, i) => (planned[i] !== undefined ? [`${r.name}: ${planned[i]}`] : [])).join("; ")})`
    )
  }
  return warnings
}
