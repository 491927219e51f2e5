/**
 * `simmer sweep sweep.yaml`: expands a sweep (src/pipeline/Sweep.ts) to one plan per
 * combination, submits them all to a daemon — a single `simmer serve`, or the API of a cluster,
 * which spreads them over its runners — waits for every run to settle, and writes one
 * comparison page over the finished runs (`simmer report --compare` across the sweep: a table,
 * and accuracy against size per strategy). Interrupting the command stops only the waiting; the
 * runs go on, and `simmer report <run> --compare …` builds the page later.
 */
import { readFile } from "node:fs/promises"
import { basename, dirname, extname, join, resolve } from "node:path"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { describeCause } from "../io/Errors.ts"
import { simmerVersion } from "../io/RunInfo.ts"
import { InvalidSweep, parseSweep } from "../pipeline/Sweep.ts"
import { buildModel } from "../report/ReportModel.ts"
import { buildReport } from "../report/WriteReport.ts"
import { summaryText } from "../report/Summary.ts"
import type { RunView } from "../server/Api.ts"
import { connectionFlags } from "./ClientCommands.ts"
import { withRange, withShownDefault } from "./Flags.ts"
import { apiClient, endedStatuses, orUnreachable } from "./DaemonClient.ts"
import { ExitCode } from "./Output.ts"

/** Statuses a sweep stops waiting at (an interrupted run is continued by its daemon). */
const ended = new Set<string>(endedStatuses)

export const sweepCommand = Command.make(
  "sweep",
  {
    sweep: Argument.String("sweep").pipe(
      Argument.withDescription(
        "A sweep file: a plan plus `sweep:`, mapping keys to vary (scorer, target, schedule, tuner, seed) to lists of values. " +
          "Its relative paths are read from its folder, on the daemon's machine."
      )
    ),
    output: Flag.String("output").pipe(
      Flag.withDescription("The comparison page to write. Default: <sweep>-comparison.html beside the sweep file."),
      Flag.optional
    ),
    name: Flag.String("name").pipe(Flag.withDescription("A prefix for the runs' names in lists. Default: the sweep file's name."), Flag.optional),
    priority: Flag.Int("priority").pipe(Flag.withDescription("Priority of every run of the sweep (higher starts first). Default: 0."), Flag.optional),
    poll: Flag.Finite("poll").pipe(Flag.withDescription("Seconds between looks at the runs while waiting."), withRange({ min: 0, minExclusive: true }, "number"), withShownDefault(2)),
    ...connectionFlags
  },
  Effect.fnUntraced(function*(input) {
    const path = resolve(input.sweep)
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8"),
      catch: (cause) => new InvalidSweep({ path, problems: [], message: `Cannot read the sweep ${path}: ${describeCause(cause)}.` })
    })
    const runs = yield* parseSweep(text, path)
    const prefix = Option.getOrElse(input.name, () => basename(path, extname(path)))
    const client = yield* apiClient(input)
    yield* Console.error(`${path}: ${runs.length} combinations; submitting them to ${input.server}`)
    const submitted: Array<{ readonly id: RunView["id"]; readonly label: string }> = []
    for (const run of runs) {
      const view = yield* client.runs.submit({
        payload: run.text,
        query: { folder: dirname(path), name: `${prefix} ${run.index + 1}/${runs.length}: ${run.label}`, priority: Option.getOrUndefined(input.priority) }
      }).pipe(orUnreachable(input.server))
      submitted.push({ id: view.id, label: run.label })
      yield* Console.error(`submitted ${run.index + 1}/${runs.length} as run ${view.id}: ${run.label}`)
    }

    // Wait for every run to settle, saying when each does.
    const status = new Map<string, RunView>()
    while (true) {
      for (const { id, label } of submitted) {
        if (ended.has(status.get(id)?.status ?? "")) continue
        const view = yield* client.runs.get({ params: { id } }).pipe(orUnreachable(input.server))
        if (ended.has(view.status)) {
          yield* Console.error(`${view.status}: run ${id} (${label})${view.error !== undefined ? ` — ${view.error.split("\n")[0]}` : ""}`)
        }
        status.set(id, view)
      }
      const done = [...status.values()].filter((v) => ended.has(v.status)).length
      if (done === submitted.length) break
      yield* Effect.sleep(`${input.poll} seconds`)
    }

    const finished = submitted.filter(({ id }) => status.get(id)?.status === "finished")
    for (const { id, label } of submitted) yield* Console.log(`${id}  ${status.get(id)!.status.padEnd(9)} ${label}`)
    if (finished.length > 0) {
      const folders = yield* Effect.forEach(finished, ({ id }) => client.runs.get({ params: { id } }).pipe(orUnreachable(input.server), Effect.map((d) => d.folder)))
      const output = resolve(Option.getOrElse(input.output, () => join(dirname(path), `${basename(path, extname(path))}-comparison.html`)))
      // Named by their swept values: what tells the runs apart to a reader.
      const report = yield* buildReport(folders[0], folders.slice(1), { output, version: simmerVersion, names: finished.map(({ label }) => label) })
      for (const warning of report.warnings) yield* Effect.logWarning(`${warning}.`)
      yield* Console.log(`${summaryText(buildModel(report.runs))}\ncomparison: ${report.path}`)
    }
    if (finished.length < submitted.length) {
      yield* Console.error(`${submitted.length - finished.length} of ${submitted.length} runs did not finish; the comparison shows the finished ones`)
      process.exitCode = ExitCode.failure
    }
  })
).pipe(
  Command.withDescription(
    "Run a sweep: one plan with lists for some keys (scorer, target, schedule, tuner, seed), one run per combination on a " +
      "daemon or a cluster, then one comparison page over all of them. Exit 0 when every run finished, 1 otherwise."
  ),
  Command.withExamples([
    { command: "simmer sweep sweep.yaml", description: "Sweep on the local daemon; the comparison lands beside sweep.yaml" },
    { command: "simmer sweep sweep.yaml --server http://simmer-api:7841 --token-file token", description: "Sweep over a cluster" }
  ])
)
