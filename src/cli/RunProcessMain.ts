/**
 * The composition root of a daemon's run process (src/server/RunProcess.ts): the live layers
 * of one run, from the daemon's `Start` — the backend and memory share the daemon gives it, its
 * gradient workers, its run folder's store (fenced on a cluster runner) and its reward models.
 * ProcessRunExecutor starts this file under a Node that strips types, with an IPC channel.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer, Redacted, Schema } from "effect"
import { postgresLayer } from "../cluster/ClusterLayer.ts"
import { stoppable } from "../pipeline/Stoppable.ts"
import { type RunProcessEnd, type RunProcessLayers, runProcess } from "../server/RunProcess.ts"
import { type StartRun, StartRunJson, startVariable } from "../server/RunProcessProtocol.ts"
import { ExitCode, stderrLogger } from "./Output.ts"
import { exitWithLauncher } from "./ParentWatch.ts"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { RunStore } from "../services/RunStore.ts"
import { Gradients } from "../services/Gradients.ts"
import { RewardModel } from "../services/RewardModel.ts"
import { RunFence } from "../services/RunFence.ts"

const GIB = 2 ** 30

const storeOf = (start: StartRun) => {
  if (start.fence === undefined) return RunStore.layerFolder(start.dir)
  const { url, ...token } = start.fence
  return RunStore.layerFenced(start.dir, token).pipe(
    Layer.provide(RunFence.layerPostgres),
    Layer.provide(postgresLayer({ url: Redacted.make(url) }))
  )
}

const layers: RunProcessLayers = {
  platform: (start) =>
    Layer.provideMerge(
      Layer.mergeAll(DeviceMemory.layer(start.memoryBytes / GIB), Gradients.layerFor(start.workers), Datasets.layer),
      Compute.layer(start.backend)
    ),
  store: storeOf,
  reward: RewardModel.layer
}

const exitCodes: Record<RunProcessEnd, number> = { finished: ExitCode.ok, stopped: ExitCode.preempted, failed: ExitCode.runFailed }

// The daemon gone (even by kill -9): stop at the next step boundary and save, as SIGTERM does.
exitWithLauncher()

const main = Effect.gen(function*() {
  const start = yield* Schema.decodeUnknownEffect(StartRunJson)(process.env[startVariable])
  return yield* stoppable((stopRequested) =>
    runProcess(layers, start, stopRequested).pipe(Effect.tap((end) => Effect.sync(() => (process.exitCode = exitCodes[end]))))
  )
}).pipe(
  Effect.provide(NodeServices.layer),
  Effect.provide(stderrLogger)
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => onExit(exit._tag === "Success" ? Number(process.exitCode ?? 0) : Number(process.exitCode ?? ExitCode.defect))
})
