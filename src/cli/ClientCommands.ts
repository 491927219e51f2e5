/**
 * The daemon's command-line client: `simmer submit`, `runs`, `status`, `watch`, `cancel` and
 * `resume` against a running `simmer serve` (--server, default the local daemon). `watch` (and
 * `submit --follow`) shows a run exactly as `simmer run` shows a local one, from the same
 * events, and exits as `simmer run` would: 0 finished, 3 target not reached, 75 cancelled,
 * 4 failed; a daemon restart is waited out.
 */
import { readFile } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import { Console, Effect, Option, Schema, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { describeCause } from "../io/Errors.ts"
import type { RunEvent } from "../io/RunEvent.ts"
import { InvalidPlan, parsePlan } from "../pipeline/Plan.ts"
import type { RunId, RunView } from "../server/Api.ts"
import type { StrategyOutcome } from "../services/JobStore.ts"
import { measuredHere } from "../server/Progress.ts"
import { RunId as RunIdSchema, RunStatus } from "../server/Api.ts"
import { apiClient, type Connection, orUnreachable, serverFlag, tokenFileFlag, watchStream } from "./DaemonClient.ts"
import { jsonFlag } from "./Flags.ts"
import { ExitCode } from "./Output.ts"
import { finishedLine, makeRunView, metricsText } from "./RunView.ts"

export const connectionFlags = { server: serverFlag, tokenFile: tokenFileFlag }

const runIdArgument = Argument.String("id").pipe(
  Argument.withDescription("A run id as `simmer submit` printed it (`simmer runs` lists them)."),
  Argument.filterMap(
    Schema.decodeUnknownOption(RunIdSchema),
    () => "a run id as `simmer submit` prints it, the submission time and six hex digits (20261202-174501-a3f9c2); `simmer runs` lists them"
  )
)

const pct = (x: number) => `${(x * 100).toFixed(1)}%`

/** How a strategy ended, in a few words: the loop's result first, the target missed said as such. */
const outcomeText = (strategy: string, o: StrategyOutcome) =>
  `${strategy} ${o.status === "failed" ? "failed" : o.targetReached ? "reached its target" : "target not reached"}: ` +
  `${pct(o.share)} of the parameters${Object.keys(o.metrics).length > 0 ? `, ${metricsText(o.metrics)}` : ""}`

/** One line about a run: id, status, name, and where it stands (each strategy's result once they ended). */
export const runLine = (run: RunView): string => {
  const p = run.progress
  const ended = Object.entries(p?.results ?? {}).sort(([a], [b]) => (a === "ptl" ? -1 : b === "ptl" ? 1 : 0))
  const where = p === undefined
    ? ""
    : run.status === "finished" && ended.length > 0
    ? ` — ${ended.map(([strategy, o]) => outcomeText(strategy, o)).join("; ")}`
    : ` — ${p.strategy} iteration ${p.iteration} ${p.phase}, ${pct(p.share)} of the parameters` +
      (p.tuning !== undefined ? `, tuning step ${p.tuning.step}/${p.tuning.steps}` : "") +
      (Object.keys(p.metrics).length === 0
        ? ""
        : measuredHere(p) || p.measuredOn === undefined
        ? `, ${metricsText(p.metrics)}`
        : ` (last evaluated: ${p.measuredOn.strategy} iteration ${p.measuredOn.iteration} at ${pct(p.measuredOn.share)} of the parameters, ${metricsText(p.metrics)})`)
  return `${run.id}  ${run.status.padEnd(11)} ${run.name}${where}${run.error !== undefined ? ` — ${run.error.split("\n")[0]}` : ""}`
}

/** The iterations a plan text plans, for the live view's "k/N" (8, the default, when it cannot be read). */
const plannedIterations = (planText: string) =>
  parsePlan(planText, "plan", { relativeTo: "/" }).pipe(Effect.map((plan) => plan.iterations), Effect.orElseSucceed(() => 8))

/** What a daemon's run says when it stops at a step boundary: its folder's `simmer resume` is not for daemon runs. */
const stoppedNote = "stopped at a step boundary with its state saved"

/**
 * Shows run `id` live until it ends, across daemon restarts (an `interrupted` run is one the
 * daemon's next start continues), then prints what `simmer run` prints: each strategy's final
 * checkpoint and the report. Sets the exit code from how it ended; Ctrl-C stops only the watching.
 */
const follow = (connection: Connection, id: RunId, json: boolean) =>
  Effect.gen(function*() {
    const client = yield* apiClient(connection)
    const detail = yield* client.runs.get({ params: { id } }).pipe(orUnreachable(connection.server))
    const view = makeRunView(json ? "json" : process.stderr.isTTY ? "tty" : "plain", yield* plannedIterations(detail.plan))
    const note = (line: string) => Effect.sync(() => view.note(line))
    let final: { status: RunStatus; error?: string } = { status: detail.status }
    const finished: Array<RunEvent> = []
    // Whether the watcher already said that it waits for the daemon, so a restart is told once.
    let waiting = false
    yield* watchStream(connection, id).pipe(
      Stream.runForEach((item) =>
        Effect.gen(function*() {
          // Anything the run does after a wait means the daemon is back, whether or not a status said so first.
          const back = (how: string) =>
            Effect.suspend(() => {
              const wasWaiting = waiting
              waiting = false
              return wasWaiting ? note(`the daemon is back: run ${id} ${how}`) : Effect.void
            })
          if (item.type === "state" || item.type === "step") {
            if (!(item.type === "state" && item.event.phase === "interrupted")) yield* back("goes on")
          }
          if (item.type === "state") {
            if (item.event.phase === "finished") finished.push(item.event)
            const event = !json && item.event.phase === "interrupted" ? { ...item.event, message: stoppedNote } : item.event
            view.show({ _tag: "Event", event })
          } else if (item.type === "step") view.show({ _tag: "Step", progress: item.progress })
          else if (item.type === "lost") {
            if (!waiting) yield* note(`lost the daemon at ${connection.server} (${item.reason}); reconnecting — the run goes on there, Ctrl-C stops watching`)
            waiting = true
          } else {
            final = item
            if (item.status === "interrupted" && !waiting) {
              yield* note(`the daemon is stopping: it continues run ${id} on its next start; waiting for it (Ctrl-C stops watching)`)
              waiting = true
            } else if (item.status === "queued" || item.status === "running") yield* back(`is ${item.status}`)
          }
        })
      ),
      Effect.onInterrupt(() =>
        Console.error(`stopped watching; run ${id} goes on on the daemon (\`simmer watch ${id}\` follows it again, \`simmer cancel ${id}\` stops it)`)
      ),
      Effect.ensuring(Effect.sync(() => view.done()))
    )
    if (!json) {
      for (const e of finished) yield* Console.log(finishedLine(e, detail.folder))
      yield* Console.log(`report: ${join(detail.folder, "report.html")} on the daemon's machine, ${connection.server}/v1/runs/${id}/report`)
      const next = final.status === "cancelled" || final.status === "failed" ? `; \`simmer resume ${id}\` queues it again` : ""
      yield* Console.error(`run ${id}: ${final.status}${final.error !== undefined ? ` — ${final.error}` : ""}${next}`)
    }
    process.exitCode = final.status === "finished"
      ? finished.some((e) => e.targetReached === false) ? ExitCode.targetNotReached : ExitCode.ok
      : final.status === "cancelled"
      ? ExitCode.preempted
      : ExitCode.runFailed
  })

export const submitCommand = Command.make(
  "submit",
  {
    plan: Argument.String("plan").pipe(Argument.withDescription("A plan file (YAML or JSON). Its relative paths are read from its folder, on the daemon's machine.")),
    follow: Flag.Boolean("follow").pipe(Flag.withDescription("Watch the run until it ends, as `simmer watch` does."), Flag.withDefault(false)),
    name: Flag.String("name").pipe(Flag.withDescription("A name for the run in lists (default: after its model)."), Flag.optional),
    priority: Flag.Int("priority").pipe(Flag.withDescription("Higher runs start first; equal ones in submission order. Default: 0."), Flag.optional),
    json: jsonFlag,
    ...connectionFlags
  },
  Effect.fnUntraced(function*(input) {
    const path = resolve(input.plan)
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8"),
      catch: (cause) => new InvalidPlan({ path, problems: [], message: `Cannot read the plan ${path}: ${describeCause(cause)}.` })
    })
    const client = yield* apiClient(input)
    const run = yield* client.runs.submit({
      payload: text,
      query: { folder: dirname(path), name: Option.getOrUndefined(input.name), priority: Option.getOrUndefined(input.priority) }
    }).pipe(orUnreachable(input.server))
    yield* Console.log(input.json ? JSON.stringify(run) : run.id)
    if (!input.json) yield* Console.error(`submitted ${path} as run ${run.id} (${run.status}); \`simmer watch ${run.id}\` follows it`)
    if (input.follow) yield* follow(input, run.id, input.json)
  })
).pipe(Command.withDescription("Queue a plan on the simmer daemon and print the run's id."))

export const runsCommand = Command.make(
  "runs",
  {
    status: Flag.Literals("status", RunStatus.literals).pipe(Flag.withDescription("Only runs with this status."), Flag.optional),
    limit: Flag.Int("limit").pipe(Flag.withDescription("How many, newest first. Default: 50."), Flag.withDefault(50)),
    json: jsonFlag,
    ...connectionFlags
  },
  Effect.fnUntraced(function*(input) {
    const client = yield* apiClient(input)
    const list = yield* client.runs.list({ query: { status: Option.getOrUndefined(input.status), limit: input.limit } }).pipe(orUnreachable(input.server))
    if (input.json) return yield* Console.log(JSON.stringify(list))
    if (list.runs.length === 0) return yield* Console.error("no runs")
    for (const run of list.runs) yield* Console.log(runLine(run))
    if (list.total > list.runs.length) yield* Console.error(`${list.runs.length} of ${list.total} runs shown (--limit)`)
  })
).pipe(Command.withDescription("List the daemon's runs, newest first."))

export const statusCommand = Command.make(
  "status",
  { id: runIdArgument, json: jsonFlag, ...connectionFlags },
  Effect.fnUntraced(function*(input) {
    const client = yield* apiClient(input)
    const run = yield* client.runs.get({ params: { id: input.id } }).pipe(orUnreachable(input.server))
    if (input.json) return yield* Console.log(JSON.stringify(run))
    yield* Console.log(runLine(run))
    yield* Console.log(`folder: ${run.folder}`)
    for (const [strategy, result] of Object.entries(run.progress?.results ?? {})) {
      yield* Console.log(
        `${strategy}: ${result.checkpoint !== undefined ? `final checkpoint ${join(run.folder, result.checkpoint)}` : "no checkpoint"}` +
          (result.message !== undefined ? ` — ${result.message.split("\n")[0]}` : "")
      )
    }
    const tuning = run.progress?.tuning
    if (tuning !== undefined) {
      yield* Console.log(
        `tuning: ${tuning.tuner} step ${tuning.step}/${tuning.steps}, loss ${tuning.loss.toFixed(3)}, ${tuning.stepsPerSecond.toFixed(2)} steps/s, ` +
          `${Math.round(tuning.tokensPerSecond)} tokens/s${tuning.etaSeconds !== undefined ? `, ${Math.round(tuning.etaSeconds)} s left` : ""}`
      )
    }
  })
).pipe(Command.withDescription("Show one run: status, progress, the tuning in progress, its folder on the daemon."))

export const watchCommand = Command.make(
  "watch",
  { id: runIdArgument, json: jsonFlag.pipe(Flag.withDescription("Print the NDJSON events on stdout as they happen.")), ...connectionFlags },
  Effect.fnUntraced(function*(input) {
    yield* follow(input, input.id, input.json)
  })
).pipe(Command.withDescription("Follow a run live, as `simmer run` shows a local one; reconnects without missing an event."))

export const cancelCommand = Command.make(
  "cancel",
  { id: runIdArgument, ...connectionFlags },
  Effect.fnUntraced(function*(input) {
    const client = yield* apiClient(input)
    const run = yield* client.runs.cancel({ params: { id: input.id } }).pipe(orUnreachable(input.server))
    yield* Console.log(runLine(run))
    if (run.status === "running") yield* Console.error(`run ${run.id} stops at its next step boundary and keeps every accepted checkpoint`)
  })
).pipe(Command.withDescription("Stop a daemon's run at its next step boundary (accepted checkpoints are kept); a queued run never starts."))

/** `simmer resume <id>` for a daemon's run (`simmer resume <folder>` continues a local run folder). */
export const resumeOnDaemon = (connection: Connection, id: RunId) =>
  Effect.gen(function*() {
    const client = yield* apiClient(connection)
    const resumed = yield* client.runs.resume({ params: { id } }).pipe(
      orUnreachable(connection.server),
      // A finished run has nothing left to do: said as such, and not an error (as for a local run folder).
      Effect.catchTag("RunStateConflict", (e) => (e.status === "finished" ? Effect.succeed(undefined) : Effect.fail(e)))
    )
    if (resumed !== undefined) return yield* Console.log(runLine(resumed))
    const run = yield* client.runs.get({ params: { id } }).pipe(orUnreachable(connection.server))
    yield* Console.log(runLine(run))
    yield* Console.error(`run ${id} already finished; there is nothing to resume (\`simmer status ${id}\` shows it, its report is in ${run.folder}).`)
  })

export const clientCommands = [submitCommand, runsCommand, statusCommand, watchCommand, cancelCommand] as const
