/**
 * `simmer serve` as one Layer: the HTTP API (handlers, token check, OpenAPI at
 * /v1/openapi.json) on a Node HTTP server, over the run queue, the event hub, the run executor
 * and the job store. The live implementations (compute backend, memory budget, datasets, SQLite
 * store, the executor runs compute in) are handed in by the composition root, src/cli. The
 * server listens only once every layer below it is built: the backend initialised and the
 * queue recovered, so the first request already finds the daemon ready.
 */
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import type { Compute } from "../services/Compute.ts"
import type { Datasets } from "../services/Datasets.ts"
import type { DeviceMemory } from "../services/DeviceMemory.ts"
import type { JobStore, JobStoreError } from "../services/JobStore.ts"
import { SimmerApi } from "./Api.ts"
import { authorizationLayer } from "./Auth.ts"
import { DaemonConfig, type DaemonSettings } from "./DaemonConfig.ts"
import { errorBodies } from "./ErrorBodies.ts"
import { ApiHandlers } from "./Handlers.ts"
import { RunHub } from "./RunHub.ts"
import { RunQueueLive } from "./RunQueue.ts"
import type { RunExecutor } from "./RunExecutor.ts"

export interface DaemonLayers {
  /** The compute backend, initialised once for every run. */
  readonly compute: Layer.Layer<Compute, unknown>
  readonly memory: Layer.Layer<DeviceMemory, never, Compute>
  readonly datasets: Layer.Layer<Datasets>
  readonly jobStore: Layer.Layer<JobStore, JobStoreError>
  /** Where runs compute: each in its own process (ProcessRunExecutor), or on a cluster's runners. */
  readonly executor: Layer.Layer<RunExecutor, unknown, DeviceMemory | Compute | Datasets>
}

export interface ListenOptions {
  readonly host: string
  readonly port: number
}

/** The services below the HTTP server, with the queue exposed for the shutdown (drain). */
export const daemonServices = (settings: DaemonSettings, layers: DaemonLayers) => {
  const platform = Layer.provideMerge(
    Layer.mergeAll(layers.memory, layers.datasets),
    layers.compute
  )
  return RunQueueLive.pipe(
    Layer.provideMerge(Layer.mergeAll(layers.executor, RunHub.layer, layers.jobStore, Layer.succeed(DaemonConfig, settings))),
    Layer.provideMerge(platform)
  )
}

/** The whole daemon: HTTP on `listen` over the services; its output includes RunQueue and HttpServer. */
export const daemonLayer = (settings: DaemonSettings, layers: DaemonLayers, listen: ListenOptions) => {
  const api = HttpApiBuilder.layer(SimmerApi, { openapiPath: "/v1/openapi.json" }).pipe(
    Layer.provide(ApiHandlers),
    Layer.provide(authorizationLayer(settings.token)),
    Layer.merge(errorBodies)
  )
  const http = HttpRouter.serve(api, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: listen.host, port: listen.port, gracefulShutdownTimeout: "1 second" }))
  )
  return http.pipe(Layer.provideMerge(daemonServices(settings, layers)))
}
