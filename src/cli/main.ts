/**
 * The `simmer` command line: the composition root. It merges the commands, provides the live
 * layers (compute backend chosen by --backend or the plan, run store, datasets, Node platform
 * services, stderr logging) and
 * runs with NodeRuntime, which turns SIGINT/SIGTERM into interruption so finalizers run.
 */
import { fileURLToPath } from "node:url"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { Command } from "effect/cli"
import { ComputeLive } from "../../layers/Compute.ts"
import { DatasetsLive } from "../../layers/Datasets.ts"
import { DeviceMemoryLive } from "../../layers/DeviceMemory.ts"
import { GradientsFor } from "../../layers/Gradients.ts"
import { JobStoreSqlite } from "../../layers/JobStore.ts"
import { RewardModelLive } from "../../layers/RewardModel.ts"
import { RunFencePostgres } from "../../layers/RunFence.ts"
import { RunStoreLive } from "../../layers/RunStore.ts"
import { simmerVersion } from "../io/RunInfo.ts"
import { clientCommands } from "./ClientCommands.ts"
import { demoCommand } from "./DemoCommand.ts"
import { evalCommand } from "./EvalCommand.ts"
import { exportCommand } from "./ExportCommand.ts"
import { generateCommand } from "./GenerateCommand.ts"
import { inspectCommand } from "./InspectCommand.ts"
import { cliOutputLayer, ExitCode, reportFailure, stderrLogger } from "./Output.ts"
import { exitWithLauncher } from "./ParentWatch.ts"
import { planCommand } from "./PlanCommand.ts"
import { resumeCommand, type RunLayers, runCommand } from "./RunCommands.ts"
import { pruneCommand } from "./PruneCommand.ts"
import { reportCommand } from "./ReportCommand.ts"
import { rewardCommand } from "./RewardCommand.ts"
import { scoreCommand } from "./ScoreCommand.ts"
import { serveCommand, type ServeLayers } from "./ServeCommand.ts"
import { sweepCommand } from "./SweepCommand.ts"
import { trainBaseCommand } from "./TrainBaseCommand.ts"
import { HubProgress } from "../hub/HubProgress.ts"
import { LockingProcess } from "../io/ProcessLock.ts"
import { downloadProgress } from "./Progress.ts"

/** Provides Compute to a command from its --backend flag. */
const withCompute = <Name extends string, I extends { readonly backend: Option.Option<string> }, CI, E, R>(
  command: Command.Command<Name, I, CI, E, R>
) => command.pipe(Command.provide((input: I) => ComputeLive(Option.getOrUndefined(input.backend))))

const gradientsLayer = GradientsFor

const runLayers: RunLayers = {
  compute: ComputeLive,
  store: RunStoreLive,
  gradients: gradientsLayer,
  memory: DeviceMemoryLive,
  datasets: DatasetsLive,
  reward: RewardModelLive
}

const serveLayers: ServeLayers = {
  compute: ComputeLive,
  memory: DeviceMemoryLive,
  datasets: DatasetsLive,
  jobStore: JobStoreSqlite,
  runProcessEntry: fileURLToPath(new URL("RunProcessMain.ts", import.meta.url)),
  fence: RunFencePostgres
}

const simmer = Command.make("simmer").pipe(
  Command.withDescription(
    "Compress Llama / Qwen2 language models with the Prune-Tune Loop: prune a little, tune it back, evaluate, " +
      "accept or roll back, until the model reaches its target size."
  ),
  Command.withSubcommands([
    inspectCommand.pipe(withCompute),
    generateCommand.pipe(Command.provide(DeviceMemoryLive()), withCompute),
    evalCommand.pipe(
      Command.provide((input) => DeviceMemoryLive(Option.getOrUndefined(input.memory))),
      withCompute
    ),
    scoreCommand.pipe(Command.provide(DeviceMemoryLive()), withCompute),
    rewardCommand.pipe(withCompute),
    pruneCommand.pipe(Command.provide(DeviceMemoryLive()), withCompute),
    exportCommand,
    planCommand(runLayers),
    runCommand(runLayers),
    resumeCommand(runLayers),
    demoCommand(runLayers),
    reportCommand,
    serveCommand(serveLayers),
    ...clientCommands,
    sweepCommand,
    trainBaseCommand.pipe(
      Command.provide((input) => Layer.merge(gradientsLayer(input.workers), DeviceMemoryLive())),
      withCompute
    )
  ])
)

const main = Command.run(simmer, { version: simmerVersion }).pipe(
  reportFailure,
  Effect.provideService(HubProgress, downloadProgress),
  // Locks this command takes name it, so another process that finds one says who holds it.
  Effect.provideService(LockingProcess, { pid: process.pid, command: process.argv.slice(2).join(" ") || "simmer" }),
  Effect.provide(DatasetsLive),
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
