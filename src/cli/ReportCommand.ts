/**
 * `simmer report <run> [--compare <run> ...]`: rebuilds <run>/report.html from the run's
 * events.ndjson and plan.yaml, with the other runs' strategies drawn beside it, and prints the
 * report's path. Reads only the event logs: no model is loaded and no compute backend started.
 */
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { writeReport } from "../report/Report.ts"
import { jsonFlag } from "./Flags.ts"

export const reportCommand = Command.make(
  "report",
  {
    run: Argument.String("run").pipe(Argument.withDescription("A run folder (events.ndjson, plan.yaml, stages/).")),
    compare: Flag.String("compare").pipe(
      Flag.withDescription("Another run folder whose strategies are plotted beside this run's; repeat to add more."),
      Flag.atLeast(0)
    ),
    json: jsonFlag
  },
  Effect.fnUntraced(function*(input) {
    const path = yield* writeReport(input.run, input.compare)
    yield* Console.log(input.json ? JSON.stringify({ report: path }) : path)
  })
).pipe(
  Command.withDescription(
    "Rebuild a run's report.html: a table per iteration, accuracy against size, tuning loss and time per stage, " +
      "for the loop and its baselines. Self-contained: open it in any browser, offline."
  ),
  Command.withExamples([
    { command: "simmer report runs/demo", description: "rebuild runs/demo/report.html" },
    { command: "simmer report runs/ptl --compare runs/one-shot", description: "plot another run's strategies beside this one" }
  ])
)
