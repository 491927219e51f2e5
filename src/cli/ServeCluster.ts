/**
 * `simmer serve --cluster`: the daemon as one process of a fleet. It builds the Postgres client
 * and the cluster's sharding, and then what this process is: a runner (`--runner-address`),
 * which takes runs from the cluster and runs them under its own DeviceMemory, and/or the API
 * (default), the daemon's HTTP API and web page unchanged but with runs sent to the cluster. It
 * serves until SIGTERM/SIGINT: a runner then stops its runs at their next step boundary, saves
 * them and hands them back at once (exit 75); an API process leaves them running.
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { NetAddress } from "effect/net"
import type { BackendUnavailable } from "../compute/Backend.ts"
import { clusterRunExecutor } from "../cluster/ClusterRunExecutor.ts"
import { clusterLayer, parseAddress } from "../cluster/ClusterLayer.ts"
import { runnerEntityLayer } from "../cluster/RunnerEntity.ts"
import { processRunExecutor, type RunProcessSettings } from "../server/ProcessRunExecutor.ts"
import { RunFence } from "../services/RunFence.ts"
import { type DaemonSettings, runsDirOf } from "../server/DaemonConfig.ts"
import { RunQueue } from "../server/RunQueue.ts"
import { daemonLayer, type DaemonPlatform, type ListenOptions } from "../server/Server.ts"
import { ExitCode, InvalidArguments } from "./Output.ts"

export interface ClusterServeOptions {
  readonly runnerAddress: string | undefined
  readonly api: boolean
  readonly lease: number
  readonly settings: DaemonSettings
  readonly listen: ListenOptions
  /** The backend, memory budget and datasets, shared by the API and the runner of this process. */
  readonly platform: Layer.Layer<DaemonPlatform, BackendUnavailable>
  /** How a runner runs each run: in a process of its own, fenced. */
  readonly runProcesses: Omit<RunProcessSettings, "fence">
}

export const serveCluster = (url: string, options: ClusterServeOptions) =>
  Effect.gen(function*() {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      return yield* new InvalidArguments({ message: `--cluster takes a Postgres URL (postgres://user:password@host:port/database), not "${url}".` })
    }
    const address = options.runnerAddress === undefined ? undefined : parseAddress(options.runnerAddress)
    if (options.runnerAddress !== undefined && address === undefined) {
      return yield* new InvalidArguments({ message: `--runner-address takes host:port (e.g. 10.0.0.7:34431), not "${options.runnerAddress}".` })
    }
    if (!options.api && address === undefined) {
      return yield* new InvalidArguments({ message: "--no-api without --runner-address leaves this process nothing to do: give it a runner address." })
    }
    const { settings } = options
    const holder = address === undefined ? undefined : `${address.host}:${address.port}`
    const cluster = clusterLayer({ url: Redacted.make(url), runnerAddress: address, leaseSeconds: options.lease, graceSeconds: settings.graceSeconds })
    const { platform } = options
    const runner = holder === undefined ? Layer.empty : runnerEntityLayer(
      { runsDir: runsDirOf(settings), holder, graceSeconds: settings.graceSeconds },
      { executor: (token) => processRunExecutor({ ...options.runProcesses, fence: () => ({ url, ...token }) }) }
    ).pipe(Layer.provide(Layer.provideMerge(RunFence.layerPostgres, cluster)), Layer.provide(platform))

    yield* Effect.scoped(Effect.gen(function*() {
      if (options.api) {
        const api = daemonLayer(settings, platform, clusterRunExecutor.pipe(Layer.provide(cluster)), options.listen)
        const context = yield* Layer.build(Layer.merge(api, runner))
        const queue = Context.get(context, RunQueue)
        const bound = Context.get(context, HttpServer.HttpServer).address
        const where = bound._tag === "UnixPathAddress" ? NetAddress.formatSocketAddress(bound) : NetAddress.formatUrlUnsafe(bound, "http")
        yield* Effect.logInfo(
          `simmer serve: listening on ${where} (cluster API${holder !== undefined ? ` and runner ${holder}` : ""}; shared data ${settings.dataDir})`
        )
        yield* Effect.never.pipe(Effect.onInterrupt(() =>
          Effect.gen(function*() {
            yield* Effect.logInfo("simmer serve: stopping; runs on other runners go on, runs on this runner stop at a step boundary and move")
            yield* queue.drain
            process.exitCode = ExitCode.preempted
          })
        ))
      } else {
        yield* Layer.build(runner)
        yield* Effect.logInfo(`simmer serve: runner ${holder} ready (shared data ${settings.dataDir})`)
        yield* Effect.never.pipe(Effect.onInterrupt(() =>
          Effect.gen(function*() {
            yield* Effect.logInfo(`simmer serve: runner ${holder} stopping; its runs save at their next step boundary and move to another runner`)
            process.exitCode = ExitCode.preempted
          })
        ))
      }
    }))
  })
