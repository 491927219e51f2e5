/**
 * A sweep: one plan with lists for some of its keys, expanded to one run per combination. The
 * file is a plan plus a `sweep:` mapping from the keys to vary — scorer, target, schedule,
 * tuner, seed — to non-empty lists of values:
 *
 *   model: base
 *   target: { parameters: 0.6 }
 *   ...
 *   sweep:
 *     scorer: [activation, wanda]
 *     seed: [1, 2, 3]
 *
 * Validation is as strict as a plan's: the sweep's own problems (an unknown or unsweepable key,
 * a value that is not a non-empty list, a key both set and swept) and every combination's plan
 * problems are reported at once, each with its line in the sweep file. A run is labelled by
 * its swept values (`scorer=wanda target=0.6`), in lists and on the comparison page.
 */
import { Effect, Schema } from "effect"
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from "yaml"
import { closestKey } from "../io/SchemaProblems.ts"
import { type ParsePlanOptions, parsePlan, type Plan } from "./Plan.ts"

export const SweptKeys = ["scorer", "target", "schedule", "tuner", "seed"] as const
export type SweptKey = (typeof SweptKeys)[number]

export class InvalidSweep extends Schema.TaggedError<InvalidSweep>()("InvalidSweep", {
  path: Schema.String,
  problems: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** One combination: its values, a short label, and its plan (text to submit, and parsed). */
export interface SweepRun {
  readonly index: number
  readonly values: ReadonlyArray<readonly [SweptKey, unknown]>
  /** e.g. "scorer=wanda seed=2" */
  readonly label: string
  /** The plan as a plan file: the sweep file without `sweep:`, with this combination's values. */
  readonly text: string
  readonly plan: Plan
}

const invalid = (path: string, problems: ReadonlyArray<string>) =>
  new InvalidSweep({
    path,
    problems,
    message: `${path} is not a valid sweep (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  ${problems.join("\n  ")}`
  })

const compact = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value))

const cartesian = <A>(lists: ReadonlyArray<ReadonlyArray<A>>): Array<Array<A>> =>
  lists.reduce<Array<Array<A>>>((acc, list) => acc.flatMap((prefix) => list.map((item) => [...prefix, item])), [[]])

/** Parses and expands a sweep file; fails with every problem, each with its line. */
export const parseSweep = (text: string, path: string, options: ParsePlanOptions = {}): Effect.Effect<ReadonlyArray<SweepRun>, InvalidSweep> =>
  Effect.gen(function*() {
    const counter = new LineCounter()
    const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true })
    if (doc.errors.length > 0) {
      return yield* invalid(path, doc.errors.map((e) => `line ${counter.linePos(e.pos[0]).line}: ${e.message.split("\n")[0]}`))
    }
    const root = doc.contents
    if (!isMap(root)) return yield* invalid(path, ["a sweep file must be a plan (a mapping of keys) with a `sweep:` mapping"])
    const lineAt = (node: { range?: [number, number, number] | null | undefined } | null | undefined) =>
      node?.range != null ? counter.linePos(node.range[0]).line : undefined
    const where = (node: Parameters<typeof lineAt>[0]) => {
      const line = lineAt(node)
      return line !== undefined ? `line ${line}: ` : ""
    }
    const keyOf = (pair: { key: unknown }) => (isScalar(pair.key) ? String(pair.key.value) : String(pair.key))
    const sweepPair = root.items.find((pair) => keyOf(pair) === "sweep")
    if (sweepPair === undefined) {
      return yield* invalid(path, [
        "sweep: missing: a sweep file is a plan plus `sweep:`, a mapping of the keys to vary (" + SweptKeys.join(", ") + ") to lists of values"
      ])
    }
    const sweep = sweepPair.value as YamlNode | null
    if (!isMap(sweep)) return yield* invalid(path, [`${where(sweepPair.key as YamlNode)}sweep: must be a mapping of keys to lists of values (e.g. seed: [1, 2, 3])`])

    const problems: Array<string> = []
    const axes: Array<{ readonly key: SweptKey; readonly items: ReadonlyArray<YamlNode> }> = []
    for (const pair of sweep.items) {
      const key = keyOf(pair)
      const keyNode = pair.key as YamlNode
      if (!(SweptKeys as ReadonlyArray<string>).includes(key)) {
        const suggestion = closestKey(key, SweptKeys)
        problems.push(
          `${where(keyNode)}sweep.${key}: cannot be swept; ${suggestion !== undefined ? `did you mean ${suggestion}? ` : ""}a sweep varies ${SweptKeys.join(", ")}`
        )
        continue
      }
      const value = pair.value as YamlNode | null
      if (!isSeq(value) || value.items.length === 0) {
        problems.push(`${where(value ?? keyNode)}sweep.${key}: must be a non-empty list of values (e.g. ${key}: [a, b])`)
        continue
      }
      const alsoSet = root.items.find((p) => keyOf(p) === key)
      if (alsoSet !== undefined) {
        problems.push(`${where(alsoSet.key as YamlNode)}${key}: also swept in sweep.${key} (line ${lineAt(keyNode)}); set it in one place`)
        continue
      }
      axes.push({ key: key as SweptKey, items: value.items as ReadonlyArray<YamlNode> })
    }
    if (sweep.items.length === 0) problems.push(`${where(sweepPair.key as YamlNode)}sweep: lists no keys to vary`)

    // The plan part, checked with its own lines: the `sweep:` block blanked out, and each
    // combination's values on lines of their own after the end, mapped back to the sweep's lines.
    // Checked even when the sweep has problems, over the keys it sweeps well, so that one typo
    // does not hide the next.
    const lines = text.split("\n")
    const first = counter.linePos((sweepPair.key as YamlNode).range![0]).line
    const last = counter.linePos(Math.max(sweep.range![1] - 1, sweep.range![0])).line
    const baseLines = lines.map((line, i) => (i + 1 >= first && i + 1 <= last ? "" : line))

    const combos = cartesian(axes.map((axis) => axis.items.map((item, i) => ({ key: axis.key, item, i }))))
    const runs: Array<SweepRun> = []
    const byProblem = new Map<string, Array<string>>()
    for (const [index, combo] of combos.entries()) {
      const values = combo.map(({ key, item }) => [key, (item as unknown as { toJS: (d: Document) => unknown }).toJS(doc)] as const)
      const label = values.map(([key, value]) => `${key}=${compact(value)}`).join(" ")
      const validation = [...baseLines, ...values.map(([key, value]) => `${key}: ${JSON.stringify(value)}`)].join("\n")
      const parsed = yield* parsePlan(validation, path, options).pipe(Effect.result)
      if (parsed._tag === "Failure") {
        for (const problem of parsed.failure.problems) {
          const remapped = problem.replace(/^line (\d+): /, (whole, n: string) => {
            const extra = Number(n) - baseLines.length - 1
            return extra >= 0 && extra < combo.length ? `line ${lineAt(combo[extra].item)}: ` : whole
          })
          byProblem.set(remapped, [...(byProblem.get(remapped) ?? []), label])
        }
        continue
      }
      const planDoc = doc.clone()
      planDoc.delete("sweep")
      for (const [key, value] of values) planDoc.set(key, value)
      runs.push({ index, values, label, text: String(planDoc), plan: parsed.success })
    }
    problems.push(...[...byProblem].map(([problem, labels]) => (labels.length === combos.length ? problem : `${problem} (in ${labels.join("; ")})`)))
    if (problems.length > 0) return yield* invalid(path, problems)
    return runs
  })
