/**
 * `simmer demo`: the main job. Runs plans/demo.yaml — the Prune-Tune Loop on the bundled base
 * model down to half its non-embedding parameters, then the one-shot baseline with the same
 * tuning budget — and prints them side by side with the report's path. `--quick` runs a
 * scaled-down plan as a smoke test.
 */
import { mkdir, writeFile, readFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { parsePlan } from "../pipeline/Plan.ts"
import type { RunEvent, Strategy } from "../pipeline/RunEvent.ts"
import { backendFlag, jsonFlag, workersFlag } from "./Flags.ts"
import { bundledModel, type RunLayers, runInFolder } from "./RunCommands.ts"

const planFile = (quick: boolean) => fileURLToPath(new URL(`../../plans/${quick ? "demo-quick" : "demo"}.yaml`, import.meta.url))

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

export const demoCommand = (layers: RunLayers) =>
  Command.make(
    "demo",
    {
      quick: Flag.Boolean("quick").pipe(Flag.withDescription("A scaled-down run (about a minute), as a smoke test."), Flag.withDefault(false)),
      out: Flag.String("out").pipe(Flag.withDescription("Run folder (default: runs/demo-<date>)."), Flag.optional),
      json: jsonFlag.pipe(Flag.withDescription("Print the NDJSON events on stdout, then the comparison as JSON.")),
      backend: backendFlag,
      workers: workersFlag
    },
    Effect.fnUntraced(function*(input) {
      const path = planFile(input.quick)
      const text = yield* Effect.promise(() => readFile(path, "utf8"))
      const plan = yield* parsePlan(text, path)
      const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)
      const dir = resolve(Option.getOrElse(input.out, () => join("runs", `demo${input.quick ? "-quick" : ""}-${stamp}`)))
      const info = { modelPath: bundledModel, createdAt: new Date().toISOString() }
      yield* Effect.promise(async () => {
        await mkdir(dir, { recursive: true })
        await writeFile(join(dir, "plan.yaml"), text)
        await writeFile(join(dir, "run.json"), JSON.stringify(info, null, 2) + "\n")
      })
      yield* Effect.logInfo(`demo: ${path} → ${dir}`)
      const events = yield* runInFolder(layers, dir, plan, info, input)
      const rows = comparison(events)
      if (input.json) yield* Console.log(JSON.stringify({ run: dir, comparison: rows }))
      else yield* Console.log(`\n${formatComparison(rows)}\n\nrun folder: ${dir}`)
    })
  ).pipe(Command.withDescription("Compress the bundled model to half its size with the Prune-Tune Loop and compare with one-shot pruning."))
