/**
 * `simmer report <run> [--compare <run> ...] [--output <file>]`: rebuilds a run's report from
 * its events.ndjson, plan.yaml and run.json, with the other runs' strategies drawn beside it,
 * prints a short summary and the page's path, and warns when compared runs were not evaluated
 * the same way. A comparison goes to its own page (not over the run's report.html) unless
 * `--output` says where. Reads only the run folders: no model is loaded, no backend started.
 */
import { join, resolve } from "node:path"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { simmerVersion } from "../io/RunInfo.ts"
import { buildModel } from "../report/ReportModel.ts"
import { buildReport } from "../report/WriteReport.ts"
import { summaryRows, summaryText } from "../report/Summary.ts"
import { jsonFlag } from "./Flags.ts"

export const reportCommand = Command.make(
  "report",
  {
    run: Argument.String("run").pipe(Argument.withDescription("A run folder (events.ndjson, plan.yaml, stages/).")),
    compare: Flag.String("compare").pipe(
      Flag.withDescription("Another run folder whose strategies are drawn beside this run's; repeat to add more."),
      Flag.atLeast(1),
      Flag.optional
    ),
    output: Flag.String("output").pipe(
      Flag.withDescription("The page to write. Default: <run>/report.html, or <run>/comparison.html with --compare."),
      Flag.optional
    ),
    json: jsonFlag
  },
  Effect.fnUntraced(function*(input) {
    const compare = Option.getOrElse(input.compare, () => [])
    const output = Option.getOrElse(input.output, () => join(input.run, compare.length > 0 ? "comparison.html" : "report.html"))
    const { path, runs, warnings } = yield* buildReport(input.run, compare, { output: resolve(output), version: simmerVersion })
    for (const warning of warnings) yield* Effect.logWarning(`${warning}.`)
    const model = buildModel(runs)
    if (input.json) {
      yield* Console.log(JSON.stringify({ report: path, summary: summaryRows(model), warnings }))
      return
    }
    yield* Console.log(`${summaryText(model)}\nreport: ${path}`)
  })
).pipe(
  Command.withDescription(
    "Rebuild a run's report: a table per iteration, accuracy against size, tuning loss and time per stage, for the " +
      "loop and its baselines, with simmer's version, the backend and the final checkpoints. Self-contained: open it in any browser, offline."
  ),
  Command.withExamples([
    { command: "simmer report runs/demo", description: "rebuild runs/demo/report.html and print a summary" },
    {
      command: "simmer report runs/ptl --compare runs/one-shot",
      description: "draw another run's strategies beside this one, into runs/ptl/comparison.html"
    },
    { command: "simmer report runs/ptl --compare runs/a --compare runs/b --output ptl-vs-ab.html", description: "several runs, page of your choice" }
  ])
)
