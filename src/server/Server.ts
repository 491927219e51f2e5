/**
 * `simmer serve` as one Layer: the HTTP API (handlers, token check, OpenAPI at
 * /v1/openapi.json) on a Node HTTP server, over the run queue, the event hub, the run executor
 * and the job store (SQLite, in the data folder). The caller chooses the device (`daemonPlatform`:
 * backend and memory budget) and where runs compute (the executor). The server listens only once
 * every layer below it is built: the backend initialised and the queue recovered, so the first
 * request already finds the daemon ready.
 */
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Compute } from "../services/Compute.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { JobStore } from "../services/JobStore.ts"
import { SimmerApi } from "./Api.ts"
import { authorizationLayer } from "./Auth.ts"
import { DaemonConfig, type DaemonSettings, storeFileOf } from "./DaemonConfig.ts"
import { errorBodies } from "./ErrorBodies.ts"
import { ApiHandlers } from "./Handlers.ts"
import { RunHub } from "./RunHub.ts"
import { RunQueueLive } from "./RunQueue.ts"
import type { RunExecutor } from "./RunExecutor.ts"

/** What runs compute on, shared by every run of the daemon. */
export type DaemonPlatform = Compute | DeviceMemory | Datasets

/**
 * The backend `backend` names (else the default order), initialised once for every run, and the
 * memory budget of `memoryGib` (else SIMMER_MEMORY_GB or the backend's own limit).
 */
export const daemonPlatform = (backend: string | undefined, memoryGib: number | undefined) =>
  Layer.provideMerge(Layer.merge(DeviceMemory.layer(memoryGib), Datasets.layer), Compute.layer(backend))

export interface ListenOptions {
  readonly host: string
  readonly port: number
}

/**
 * The services below the HTTP server, with the queue exposed for the shutdown (drain). `executor`
 * says where runs compute: each in its own process (ProcessRunExecutor), or on a cluster's runners.
 */
export const daemonServices = <E1, E2>(
  settings: DaemonSettings,
  platform: Layer.Layer<DaemonPlatform, E1>,
  executor: Layer.Layer<RunExecutor, E2, DaemonPlatform>
) =>
  RunQueueLive.pipe(
    Layer.provideMerge(Layer.mergeAll(executor, RunHub.layer, JobStore.layerSqlite(storeFileOf(settings)), Layer.succeed(DaemonConfig, settings))),
    Layer.provideMerge(platform)
  )

/** The whole daemon: HTTP on `listen` over the services; its output includes RunQueue and HttpServer. */
export const daemonLayer = <E1, E2>(
  settings: DaemonSettings,
  platform: Layer.Layer<DaemonPlatform, E1>,
  executor: Layer.Layer<RunExecutor, E2, DaemonPlatform>,
  listen: ListenOptions
) => {
  const api = HttpApiBuilder.layer(SimmerApi, { openapiPath: "/v1/openapi.json" }).pipe(
    Layer.provide(ApiHandlers),
    Layer.provide(authorizationLayer(settings.token)),
    Layer.merge(errorBodies)
  )
  const http = HttpRouter.serve(api, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: listen.host, port: listen.port, gracefulShutdownTimeout: "1 second" }))
  )
  return http.pipe(Layer.provideMerge(daemonServices(settings, platform, executor)))
}
