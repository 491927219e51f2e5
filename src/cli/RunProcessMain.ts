/**
 * The composition root of a daemon's run process (src/server/RunProcess.ts): the live layers
 * of one run, from the daemon's `Start` — the backend and memory share the daemon gives it, its
 * gradient workers, its run folder's store (fenced on a cluster runner) and its reward models.
 * ProcessRunExecutor starts this file under a Node that strips types, with an IPC channel.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer, Redacted, Schema } from "effect"
import { ComputeLive } from "../../layers/Compute.ts"
import { DatasetsLive } from "../../layers/Datasets.ts"
import { DeviceMemoryLive } from "../../layers/DeviceMemory.ts"
import { FencedRunStore } from "../../layers/FencedRunStore.ts"
import { GradientsFor } from "../../layers/Gradients.ts"
import { RewardModelLive } from "../../layers/RewardModel.ts"
import { RunFencePostgres } from "../../layers/RunFence.ts"
import { RunStoreLive } from "../../layers/RunStore.ts"
import { postgresLayer } from "../cluster/ClusterLayer.ts"
import { stoppable } from "../pipeline/Stoppable.ts"
import { type RunProcessEnd, type RunProcessLayers, runProcess } from "../server/RunProcess.ts"
import { type StartRun, StartRunJson, startVariable } from "../server/RunProcessProtocol.ts"
import { ExitCode, stderrLogger } from "./Output.ts"
import { exitWithLauncher } from "./ParentWatch.ts"

const GIB = 2 ** 30

const storeOf = (start: StartRun) => {
  if (start.fence === undefined) return RunStoreLive(start.dir)
  const { url, ...token } = start.fence
  return FencedRunStore(start.dir, token).pipe(
    Layer.provide(RunFencePostgres),
    Layer.provide(postgresLayer({ url: Redacted.make(url) }))
  )
}

const layers: RunProcessLayers = {
  platform: (start) =>
    Layer.provideMerge(
      Layer.mergeAll(DeviceMemoryLive(start.memoryBytes / GIB), GradientsFor(start.workers), DatasetsLive),
      ComputeLive(start.backend)
    ),
  store: storeOf,
  reward: RewardModelLive
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
