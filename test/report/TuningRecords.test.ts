/**
 * The report counts each tuning once. The loop's events carry an attempt's tuning record on
 * every state after it (`tuned`, `evaluated`, `accepted` / `rolled-back`); the report must take
 * it from the `tuned` events alone, so its steps, tokens and loss plots agree with the events
 * and the terminal table (Comparison), and its final states with result.json and the
 * `simmer report` summary: tested on a real run with a rolled-back attempt.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { renderReport } from "../../src/report/ReportPage.ts"
import { readRun } from "../../src/report/WriteReport.ts"
import { comparison } from "../../src/report/Comparison.ts"
import { buildModel } from "../../src/report/ReportModel.ts"
import { summaryRows } from "../../src/report/Summary.ts"
import { simmer } from "../helpers/cli.ts"
import { unreachablePlan } from "../helpers/plans.ts"

const dirs: Array<string> = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

describe("the report's tuning records", () => {
  it("count each tuning once, on a run with a rolled-back attempt and a baseline", async () => {
    const dir = await mkdtemp(join(tmpdir(), "simmer-tuning-records-"))
    dirs.push(dir)
    await writeFile(join(dir, "plan.yaml"), `${unreachablePlan("stop").replace("steps: 1,", "steps: 3,")}baselines: [one-shot]\n`)
    const run = await simmer(["run", join(dir, "plan.yaml"), "--out", join(dir, "run"), "--workers", "1"])
    expect(run.status, run.stderr).toBe(3)

    const events = (await readFile(join(dir, "run", "events.ndjson"), "utf8")).trim().split("\n").map((l) => JSON.parse(l))
    expect(events.some((e) => e.phase === "rolled-back" && e.tune !== undefined)).toBe(true)
    const input = await Effect.runPromise(readRun(join(dir, "run")))
    const model = buildModel([input])
    for (const series of model.series) {
      const tuned = events.filter((e) => e.strategy === series.strategy && e.phase === "tuned")
      const tunes = series.rows.flatMap((row) => row.tunes)
      expect(tunes.map((t) => t.steps), series.strategy).toEqual(tuned.map((e) => e.tune.steps))
      expect(tunes.reduce((n, t) => n + t.tokens, 0), series.strategy).toBe(tuned.reduce((n: number, e) => n + e.tune.tokens, 0))
    }
    // The terminal table (the demo's comparison) counts the same tokens, strategy by strategy.
    const table = comparison(input.events)
    const result = JSON.parse(await readFile(join(dir, "run", "result.json"), "utf8"))
    const summary = summaryRows(model)
    expect(model.series.map((s) => s.strategy).sort()).toEqual(Object.keys(result.strategies).sort())
    for (const [i, series] of model.series.entries()) {
      const tokens = series.rows.reduce((n, row) => n + row.tunes.reduce((m, t) => m + t.tokens, 0), 0)
      expect(tokens, series.strategy).toBeGreaterThan(0)
      expect(table.find((row) => row.strategy === series.strategy)?.tuningTokens, series.strategy).toBe(tokens)
      // The report's final state is the one result.json records.
      const recorded = result.strategies[series.strategy]
      expect(Object.keys(recorded.metrics).length, series.strategy).toBeGreaterThan(0)
      expect(series.final.parameters, series.strategy).toEqual(recorded.parameters)
      expect(series.final.iteration, series.strategy).toBe(recorded.iteration)
      expect(series.final.checkpoint, series.strategy).toBe(recorded.checkpoint)
      expect(series.final.metrics, series.strategy).toEqual(recorded.metrics)
      expect(series.targetReached, series.strategy).toBe(recorded.targetReached)
      expect(summary[i].nonEmbeddingShare, series.strategy).toBeCloseTo(recorded.share, 12)
    }
    // The loss plot's caption counts the steps the run tuned, in the tunings it ran.
    const ptlTunings = events.filter((e) => e.strategy === "ptl" && e.phase === "tuned")
    const html = renderReport([input])
    expect(html).toContain(`${ptlTunings.reduce((n: number, e) => n + e.tune.steps, 0)} steps in ${ptlTunings.length} tuning run${ptlTunings.length === 1 ? "" : "s"}`)
  }, 120_000)
})
