/**
 * The `simmer` command line: the composition root. It merges the commands, provides the
 * services' layers a command's flags choose (compute backend from --backend, memory budget from
 * --memory, gradient workers; run commands and serve build theirs from the plan and flags), the
 * datasets, Node platform services and stderr logging, and runs with NodeRuntime, which turns
 * SIGINT/SIGTERM into interruption so finalizers run.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { Command } from "effect/cli"
import { simmerVersion } from "../io/RunInfo.ts"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { Gradients } from "../services/Gradients.ts"
import { clientCommands } from "./ClientCommands.ts"
import { demoCommand } from "./DemoCommand.ts"
import { evalCommand } from "./EvalCommand.ts"
import { exportCommand } from "./ExportCommand.ts"
import { generateCommand } from "./GenerateCommand.ts"
import { inspectCommand } from "./InspectCommand.ts"
import { cliOutputLayer, ExitCode, reportFailure, stderrLogger } from "./Output.ts"
import { exitWithLauncher } from "./ParentWatch.ts"
import { planCommand } from "./PlanCommand.ts"
import { resumeCommand, runCommand } from "./RunCommands.ts"
import { pruneCommand } from "./PruneCommand.ts"
import { reportCommand } from "./ReportCommand.ts"
import { rewardCommand } from "./RewardCommand.ts"
import { scoreCommand } from "./ScoreCommand.ts"
import { serveCommand } from "./ServeCommand.ts"
import { sweepCommand } from "./SweepCommand.ts"
import { trainBaseCommand } from "./TrainBaseCommand.ts"
import { HubProgress } from "../hub/HubProgress.ts"
import { LockingProcess } from "../io/ProcessLock.ts"
import { downloadProgress } from "./Progress.ts"

/** Provides Compute to a command from its --backend flag. */
const withCompute = <Name extends string, I extends { readonly backend: Option.Option<string> }, CI, E, R>(
  command: Command.Command<Name, I, CI, E, R>
) => command.pipe(Command.provide((input: I) => Compute.layer(Option.getOrUndefined(input.backend))))

const simmer = Command.make("simmer").pipe(
  Command.withDescription(
    "Compress Llama / Qwen2 language models with the Prune-Tune Loop: prune a little, tune it back, evaluate, " +
      "accept or roll back, until the model reaches its target size."
  ),
  Command.withSubcommands([
    inspectCommand.pipe(withCompute),
    generateCommand.pipe(Command.provide(DeviceMemory.layer()), withCompute),
    evalCommand.pipe(
      Command.provide((input) => DeviceMemory.layer(Option.getOrUndefined(input.memory))),
      withCompute
    ),
    scoreCommand.pipe(Command.provide(DeviceMemory.layer()), withCompute),
    rewardCommand.pipe(withCompute),
    pruneCommand.pipe(Command.provide(DeviceMemory.layer()), withCompute),
    exportCommand,
    planCommand,
    runCommand,
    resumeCommand,
    demoCommand,
    reportCommand,
    serveCommand,
    ...clientCommands,
    sweepCommand,
    trainBaseCommand.pipe(
      Command.provide((input) => Layer.merge(Gradients.layerFor(input.workers), DeviceMemory.layer())),
      withCompute
    )
  ])
)

const main = Command.run(simmer, { version: simmerVersion }).pipe(
  reportFailure,
  Effect.provideService(HubProgress, downloadProgress),
  // Locks this command takes name it, so another process that finds one says who holds it.
  Effect.provideService(LockingProcess, { pid: process.pid, command: process.argv.slice(2).join(" ") || "simmer" }),
  Effect.provide(Datasets.layer),
  Effect.provide(NodeServices.layer),
  Effect.provide(stderrLogger),
  Effect.provide(cliOutputLayer)
)

exitWithLauncher()

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  // An interrupted run that saved its state exits with its own code (see Output.ExitCode).
  teardown: (exit, onExit) =>
    onExit(exit._tag === "Success" ? Number(process.exitCode ?? 0) : process.exitCode === ExitCode.preempted ? ExitCode.preempted : ExitCode.interrupted)
})
