/**
 * `simmer run <plan>` and `simmer resume <run>`: the Prune-Tune Loop from a plan into a run
 * folder, and its continuation after an interruption. The live layers (compute backend, run
 * store) are handed in by the composition root, because the backend comes from the plan.
 */
import { mkdir, writeFile } from "node:fs/promises"
import { basename, dirname, extname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Console, Effect, Layer, Option, Schema } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { pathExists } from "../io/AtomicWrite.ts"
import { readEvents, writeReport } from "../report/Report.ts"
import { executeRun } from "../pipeline/Run.ts"
import { type Plan, readPlan } from "../pipeline/Plan.ts"
import type { RunEvent } from "../io/RunEvent.ts"
import { openRunFolder, planFileName } from "../io/RunFolder.ts"
import { readRunInfo, recordInRunInfo, type RunInfo, simmerVersion } from "../io/RunInfo.ts"
import { type BackendUnavailable, Compute } from "../services/Compute.ts"
import type { RunStore } from "../services/RunStore.ts"
import type { FileSystemError } from "../io/Errors.ts"
import { Gradients, type GradientsFailed } from "../services/Gradients.ts"
import { backendFlag, jsonFlag, workersFlag } from "./Flags.ts"
import { ExitCode } from "./Output.ts"
import { makeRunView } from "./RunView.ts"

/** The live layers the run commands need, chosen at run time. */
export interface RunLayers {
  readonly compute: (choice: string | undefined) => Layer.Layer<Compute, BackendUnavailable>
  readonly store: (dir: string) => Layer.Layer<RunStore, FileSystemError>
  /** Gradients for tuning: in this thread (1) or over that many worker threads. */
  readonly gradients: (workers: number) => Layer.Layer<Gradients, GradientsFailed, Compute>
}

export interface RunFlags {
  readonly json: boolean
  readonly backend: Option.Option<string>
  readonly workers: number
}

export class RunFolderError extends Schema.TaggedError<RunFolderError>()("RunFolderError", {
  path: Schema.String,
  message: Schema.String
}) {}

/** The bundled base model, for plans that say `model: base`. */
export const bundledModel = fileURLToPath(new URL("../../models/base", import.meta.url))

const resolveModel = (plan: Plan, cwd: string) => (plan.model === "base" ? bundledModel : resolve(cwd, plan.model))

/** Runs (or continues) the run in `dir` and rebuilds its report; sets the preemption exit code when interrupted. */
export const runInFolder = (layers: RunLayers, dir: string, plan: Plan, info: RunInfo, options: RunFlags) =>
  Effect.gen(function*() {
    const mode = options.json ? "json" : process.stderr.isTTY ? "tty" : "plain"
    const logged = yield* readEvents(join(dir, "events.ndjson")).pipe(Effect.orElseSucceed((): Array<RunEvent> => []))
    const view = makeRunView(mode, plan.iterations, logged[0]?.parameters.nonEmbedding)
    const gradients = yield* Gradients
    yield* recordInRunInfo(dir, { backend: (yield* Compute).description })
    const events: ReadonlyArray<RunEvent> = yield* executeRun({
      plan,
      modelPath: info.modelPath,
      gradients: (config, params, batch) => gradients.lossAndGradients(config, params, batch),
      onState: view.onState,
      onTuneStep: view.onTuneStep
    }).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          view.done()
          // A saved tuning state or accepted checkpoints make the run resumable.
          process.exitCode = ExitCode.preempted
          process.stderr.write(`interrupted: run \`simmer resume ${dir}\` to continue (exit code ${ExitCode.preempted})\n`)
        })
      ),
      Effect.provide(layers.store(dir))
    )
    view.done()
    const report = yield* writeReport(dir, [])
    if (!options.json) {
      for (const e of events.filter((e) => e.phase === "finished")) {
        const metrics = Object.entries(e.metrics ?? {}).map(([k, m]) => `${k} ${m.accuracy !== undefined ? `${(m.accuracy * 100).toFixed(1)}%` : `ppl ${m.perplexity?.toFixed(2)}`}`).join(", ")
        yield* Console.log(`${e.strategy}: ${e.parameters.nonEmbedding.toLocaleString("en-US")} non-embedding parameters, ${metrics}; checkpoint ${join(dir, e.checkpoint ?? "")}`)
      }
      yield* Console.log(`report: ${report}`)
    }
    return events
  }).pipe(
    Effect.provide(Layer.provideMerge(layers.gradients(Math.max(1, options.workers)), layers.compute(Option.getOrUndefined(options.backend) ?? plan.backend)))
  )

export const runCommand = (layers: RunLayers) =>
  Command.make(
    "run",
    {
      plan: Argument.String("plan").pipe(Argument.withDescription("A plan file (YAML or JSON); `simmer plan --example` prints one.")),
      out: Flag.String("out").pipe(
        Flag.withDescription("Run folder to create (default: runs/<plan name>-<date>)."),
        Flag.optional
      ),
      json: jsonFlag.pipe(Flag.withDescription("Print the NDJSON events on stdout as they happen.")),
      backend: backendFlag,
      workers: workersFlag
    },
    Effect.fnUntraced(function*(input) {
      const { plan, text } = yield* readPlan(input.plan)
      const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)
      const dir = resolve(Option.getOrElse(input.out, () => join("runs", `${basename(input.plan, extname(input.plan))}-${stamp}`)))
      if (yield* pathExists(dir)) {
        return yield* new RunFolderError({ path: dir, message: `${dir} already exists; choose another --out, or continue it with \`simmer resume ${dir}\`.` })
      }
      const info: RunInfo = {
        modelPath: resolveModel(plan, process.cwd()),
        createdAt: new Date().toISOString(),
        planFolder: dirname(resolve(input.plan)),
        simmerVersion
      }
      yield* Effect.promise(async () => {
        await mkdir(dir, { recursive: true })
        await writeFile(join(dir, "plan.yaml"), text)
        await writeFile(join(dir, "run.json"), JSON.stringify(info, null, 2) + "\n")
      })
      yield* Effect.logInfo(`run folder ${dir}`)
      yield* runInFolder(layers, dir, plan, info, input)
    })
  ).pipe(
    Command.withDescription("Compress a model with the Prune-Tune Loop as a plan describes; SIGTERM/SIGINT stop it resumably."),
    Command.withExamples([{ command: "simmer run plan.yaml --out runs/half", description: "Run a plan into runs/half" }])
  )

export const resumeCommand = (layers: RunLayers) =>
  Command.make(
    "resume",
    {
      run: Argument.String("run").pipe(Argument.withDescription("The run folder of an interrupted `simmer run`.")),
      json: jsonFlag.pipe(Flag.withDescription("Print the NDJSON events on stdout as they happen.")),
      backend: backendFlag,
      workers: workersFlag
    },
    Effect.fnUntraced(function*(input) {
      const dir = resolve(input.run)
      yield* openRunFolder(dir, [planFileName, "run.json"])
      const read = yield* readRunInfo(dir)
      if (read._tag === "Failure") return yield* new RunFolderError({ path: dir, message: `${read.failure}.` })
      const info = read.success
      // Relative paths in the plan are read from the plan's folder (older runs: the working directory, as then).
      const { plan } = yield* readPlan(join(dir, planFileName), { relativeTo: info.planFolder ?? process.cwd() })
      yield* runInFolder(layers, dir, plan, info, input)
    })
  ).pipe(Command.withDescription("Continue an interrupted run exactly where it stopped."))
