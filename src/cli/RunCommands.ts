/**
 * `simmer run <plan>` and `simmer resume <run>`: the Prune-Tune Loop from a plan into a run
 * folder, and its continuation after an interruption. Each builds its services' layers (compute
 * backend, gradients, device memory, reward, run store, datasets) when it runs, because the
 * backend comes from the plan and the flags, and the store from the folder.
 *
 * SIGINT/SIGTERM do not cut a run short: they ask it to stop at the next step boundary, where
 * it saves what it was doing, logs an `interrupted` event and ends; the command then exits with
 * 75 (see Output.ExitCode).
 */
import { existsSync } from "node:fs"
import { basename, dirname, extname, join, resolve } from "node:path"
import { Cause, Console, Effect, Exit, Layer, Option, Schema, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { type InferenceChoice, resolveInference } from "../compute/Inference.ts"
import { readEvents } from "../io/EventLog.ts"
import { createRunFolder, eventsFileName, openRunFolder, planFileName, RunFolderError } from "../io/RunFolder.ts"
import { readRunInfo, recordInRunInfo, type RunInfo, simmerVersion } from "../io/RunInfo.ts"
import type { RunEvent } from "../io/RunEvent.ts"
import { bundledModelPath, type Plan, readPlan, resolveModelPath } from "../pipeline/Plan.ts"
import { checkPlanInputs } from "../pipeline/PlanCheck.ts"
import { applyHubPins, pinHubRefs } from "../pipeline/PlanHubRefs.ts"
import { preflight } from "../pipeline/Preflight.ts"
import { runUpdates } from "../pipeline/Run.ts"
import type { RunSetup } from "../pipeline/RunSetup.ts"
import { onnxFolderName } from "../pipeline/StageExport.ts"
import { stoppable } from "../pipeline/Stoppable.ts"
import { failureMessage } from "../pipeline/RunFailure.ts"
import { writeReport } from "../report/WriteReport.ts"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { Gradients } from "../services/Gradients.ts"
import { RewardModel } from "../services/RewardModel.ts"
import { RunStore } from "../services/RunStore.ts"
import { RunId } from "../services/JobStore.ts"
import { connectionFlags, resumeOnDaemon } from "./ClientCommands.ts"
import { backendFlag, inferenceFlag, jsonFlag, memoryFlag, workersFlag } from "./Flags.ts"
import { ExitCode, RunFailed } from "./Output.ts"
import { finishedLine, makeRunView } from "./RunView.ts"

export interface RunFlags {
  readonly json: boolean
  readonly backend: Option.Option<string>
  readonly workers: number
  readonly memory: Option.Option<number>
  readonly inference: InferenceChoice
}

/** How a run command ended, for its exit code (a run that failed ends in RunFailed instead). */
export type RunOutcome = "finished" | "target-not-reached" | "interrupted"

/** The compute and memory layers a plan is checked with: no gradient workers, no reward model. */
const checkLayers = (plan: Plan, flags: Pick<RunFlags, "backend" | "memory">) =>
  Layer.provideMerge(DeviceMemory.layer(Option.getOrUndefined(flags.memory)), Compute.layer(Option.getOrUndefined(flags.backend) ?? plan.backend))

/** The same, with the gradients tuning computes with and the plan's reward models loaded. */
const computeLayers = (plan: Plan, flags: RunFlags) =>
  Layer.provideMerge(Layer.merge(Gradients.layerFor(Math.max(1, flags.workers)), RewardModel.layer(plan.reward ?? [], flags.inference)), checkLayers(plan, flags))

/**
 * A plan file checked as `simmer run` checks it before creating anything — its keys, the
 * files and models it names (PlanCheck), then what it needs on this machine (Preflight:
 * tokenizer, every dataset read whole, the memory budget) — and `simmer plan check` with it.
 */
export const readRunnablePlan = (
  path: string,
  flags: Pick<RunFlags, "backend" | "memory" | "inference"> & {
    /** Fetch the weights of models named by Hub id (a run), or only their config and tokenizer (a check). */
    readonly weights: boolean
  }
) =>
  Effect.gen(function*() {
    const read = yield* readPlan(path, { inputChecks: checkPlanInputs(bundledModelPath) })
    // Models and datasets named by Hub id are fetched into the cache and pinned to a commit.
    const { plan, pins } = yield* pinHubRefs(read.plan, { weights: flags.weights })
    const setup = yield* Effect.gen(function*() {
      const inference = yield* resolveInference(flags.inference, (yield* Compute).backend)
      return yield* preflight(plan, resolveModelPath(plan), inference)
    }).pipe(
      Effect.provide(Layer.merge(checkLayers(plan, flags), Datasets.layer))
    )
    return { ...read, plan, pins, setup }
  })

/** Runs (or continues) the run in `dir`, shows it, rebuilds its report and says how it ended. */
export const runInFolder = (dir: string, plan: Plan, info: RunInfo, flags: RunFlags, setup?: RunSetup) =>
  // The whole of it runs to its end on an interruption: the run stops at a step boundary, and the
  // report and summary still describe where it stopped.
  stoppable((stopRequested) =>
    Effect.gen(function*() {
      const mode = flags.json ? "json" : process.stderr.isTTY ? "tty" : "plain"
      const logged = yield* readEvents(join(dir, eventsFileName)).pipe(Effect.orElseSucceed((): Array<RunEvent> => []))
      const view = makeRunView(mode, plan.iterations, logged[0]?.parameters.nonEmbedding)
      let stopped = false
      let failed: RunEvent | undefined
      const compute = yield* Compute
      const inference = yield* resolveInference(flags.inference, compute.backend)
      yield* recordInRunInfo(dir, { backend: compute.description, inference })
      const ran = yield* runUpdates({ plan, modelPath: info.modelPath, stopRequested, inference, ...(setup !== undefined ? { setup } : {}) }).pipe(
        Stream.runForEach((update) =>
          Effect.sync(() => {
            if (update._tag === "Event" && update.event.phase === "interrupted") stopped = true
            if (update._tag === "Event" && update.event.phase === "failed") failed = update.event
            view.show(update)
          })
        ),
        Effect.ensuring(Effect.sync(() => view.done())),
        Effect.provide(RunStore.layerFolder(dir)),
        Effect.exit
      )
      // A run that logged its failure (a typed error) still gets its report; anything else (the
      // folder in use, a defect) ends the command as it is.
      if (Exit.isFailure(ran) && (failed === undefined || !Cause.hasFails(ran.cause) || Cause.hasDies(ran.cause))) {
        return yield* Effect.failCause(ran.cause)
      }
      const report = yield* writeReport(dir, [])
      const events = yield* readEvents(join(dir, eventsFileName))
      const finished = events.filter((e) => e.phase === "finished")
      if (!flags.json) {
        for (const e of finished) yield* Console.log(finishedLine(e, dir))
        if (plan.export.includes("onnx")) yield* Console.log(`onnx: every accepted stage in ${join(dir, onnxFolderName)}/<stage>/`)
        yield* Console.log(`report: ${report}`)
      }
      if (Exit.isFailure(ran)) return yield* new RunFailed({ message: failureMessage(ran.cause) })
      if (stopped) yield* Console.error(`interrupted: run \`simmer resume ${dir}\` to continue (exit code ${ExitCode.preempted})`)
      const outcome: RunOutcome = stopped ? "interrupted" : finished.some((e) => e.targetReached === false) ? "target-not-reached" : "finished"
      process.exitCode = outcome === "interrupted" ? ExitCode.preempted : outcome === "target-not-reached" ? ExitCode.targetNotReached : ExitCode.ok
      return events
    }).pipe(
      Effect.provide(Layer.merge(computeLayers(plan, flags), Datasets.layer))
    )
  )

export const runFlags = {
  json: jsonFlag.pipe(Flag.withDescription("Print the NDJSON events on stdout as they happen.")),
  backend: backendFlag,
  workers: workersFlag,
  memory: memoryFlag,
  inference: inferenceFlag
}

export const runCommand = Command.make(
  "run",
  {
    plan: Argument.String("plan").pipe(Argument.withDescription("A plan file (YAML or JSON); `simmer plan --example` prints one.")),
    out: Flag.String("out").pipe(
      Flag.withDescription("Run folder to create (default: runs/<plan name>-<date>)."),
      Flag.optional
    ),
    replace: Flag.Boolean("replace").pipe(
      Flag.withDescription("Delete an existing run folder at --out and start over (only once the plan has been checked)."),
      Flag.withDefault(false)
    ),
    ...runFlags
  },
  Effect.fnUntraced(function*(input) {
    const planPath = resolve(input.plan)
    // Relative paths in the plan (model, data files) are read from the plan's folder.
    // Nothing is created for a plan that cannot run: a missing model or data file, or one too large.
    const { plan, text, pins, setup } = yield* readRunnablePlan(planPath, { ...input, weights: true })
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)
    const dir = resolve(Option.getOrElse(input.out, () => join("runs", `${basename(planPath, extname(planPath))}-${stamp}`)))
    const info: RunInfo = {
      modelPath: resolveModelPath(plan),
      createdAt: new Date().toISOString(),
      planFolder: dirname(planPath),
      simmerVersion,
      ...(pins.length > 0 ? { hub: pins } : {})
    }
    yield* createRunFolder(dir, text, info, { replace: input.replace })
    yield* Effect.logInfo(`run folder ${dir}`)
    yield* runInFolder(dir, plan, info, input, setup)
  })
).pipe(
  Command.withDescription(
    "Compress a model with the Prune-Tune Loop as a plan describes. SIGTERM/SIGINT stop it at the next step " +
      "boundary with its state saved (exit 75); `simmer resume` continues it."
  ),
  Command.withExamples([{ command: "simmer run plan.yaml --out runs/half", description: "Run a plan into runs/half" }])
)

export const resumeCommand = Command.make(
  "resume",
  {
    run: Argument.String("run").pipe(
      Argument.withDescription("The run folder of an interrupted `simmer run`, or the id of a daemon's run (`simmer runs`).")
    ),
    ...runFlags,
    ...connectionFlags
  },
  Effect.fnUntraced(function*(input) {
    // A daemon's run id that is not also a folder here: the daemon queues the run again.
    if (Schema.is(RunId)(input.run) && !existsSync(resolve(input.run))) return yield* resumeOnDaemon(input, input.run)
    const dir = resolve(input.run)
    yield* openRunFolder(dir, [planFileName, "run.json"])
    const info = yield* readRunInfo(dir).pipe(Effect.mapError((e) => new RunFolderError({ path: dir, message: `${e.message}.` })))
    // Relative paths in the plan are read from the plan's folder (older runs: the working directory, as then).
    const { plan: written } = yield* readPlan(join(dir, planFileName), { relativeTo: info.planFolder ?? process.cwd() })
    // The commits the run started with, from the cache.
    const { plan } = yield* pinHubRefs(applyHubPins(written, info.hub ?? []))
    const events = yield* readEvents(join(dir, eventsFileName)).pipe(Effect.orElseSucceed((): Array<RunEvent> => []))
    const finished = events.filter((e) => e.phase === "finished")
    if (finished.length === 1 + plan.baselines.length) {
      yield* Console.error(
        `${dir} already finished (${finished.map((e) => `${e.strategy} at ${e.checkpoint}`).join(", ")}); there is nothing to resume. ` +
          `Its report is ${join(dir, "report.html")}; \`simmer run --replace\` starts a run over.`
      )
      return
    }
    yield* runInFolder(dir, plan, info, input)
  })
).pipe(
  Command.withDescription(
    "Continue an interrupted run exactly where it stopped: a run folder here, or a daemon's cancelled, interrupted or failed run by its id."
  )
)
