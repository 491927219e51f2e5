/**
 * The API's handlers: each endpoint of Api.ts answered from the run queue, the run folders and
 * the event stream. Bodies are read within the size limit (413 beyond it); streams and files are
 * written as they are read, never held whole in memory.
 */
import * as tf from "@tensorflow/tfjs"
import { readFileSync } from "node:fs"
import { isAbsolute } from "node:path"
import { fileURLToPath } from "node:url"
import { ByteSize, Effect, Layer, Stream } from "effect"
import { HttpIncomingMessage, type HttpServerError, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { reportPage } from "../report/WriteReport.ts"
import { Compute } from "../services/Compute.ts"
import { BodyTooLarge, InvalidSubmission, RunNotFound, ServerFailure, ShuttingDown, SimmerApi } from "./Api.ts"
import { checkpointFile, listCheckpoints } from "./Checkpoints.ts"
import { DaemonConfig } from "./DaemonConfig.ts"
import { watchBody } from "./EventStream.ts"
import { renderMetrics } from "./Metrics.ts"
import { RunHub } from "./RunHub.ts"
import { RunQueue } from "./RunQueue.ts"
import { simmerVersion } from "../io/RunInfo.ts"

const pagePath = fileURLToPath(new URL("./page.html", import.meta.url))

const tooLarge = (limit: number) =>
  new BodyTooLarge({ limitBytes: limit, message: `The request body is larger than this daemon accepts (${limit} bytes); a plan is a few kilobytes.` })

/** A body read that stopped at the limit: HttpServerError → RequestParseError with reason BodyTooLarge. */
const isBodyTooLarge = (error: HttpServerError.HttpServerError) => error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"

export const RunsHandlers = HttpApiBuilder.group(
  SimmerApi,
  "runs",
  Effect.fn(function*(handlers) {
    const queue = yield* RunQueue
    const settings = yield* DaemonConfig
    return handlers
      .handleRaw("submit", ({ query, request }) =>
        Effect.gen(function*() {
          const declared = Number(request.headers["content-length"] ?? "0")
          if (declared > settings.maxBodyBytes) return yield* tooLarge(settings.maxBodyBytes)
          const text = yield* request.text.pipe(
            Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(settings.maxBodyBytes)),
            Effect.mapError((cause) => (isBodyTooLarge(cause) ? tooLarge(settings.maxBodyBytes) : new InvalidSubmission({ message: "The request body could not be read.", problems: [] })))
          )
          if (query.folder !== undefined && !isAbsolute(query.folder)) {
            return yield* new InvalidSubmission({ message: `folder must be an absolute path, not ${query.folder}.`, problems: [] })
          }
          const view = yield* queue.submit(text, query)
          return HttpServerResponse.jsonUnsafe(view, { status: 201 })
        }))
      .handle("list", ({ query }) => queue.list(query))
      .handle("get", ({ params }) => queue.get(params.id))
      .handle("events", ({ params, query, headers }) =>
        Effect.gen(function*() {
          yield* queue.record(params.id)
          const lastEventId = Number.parseInt(headers["last-event-id"] ?? "", 10)
          const after = query.after ?? (Number.isFinite(lastEventId) ? lastEventId : undefined)
          const format = query.format ?? "sse"
          // The stream outlives this handler: it carries the services it needs with it.
          const context = yield* Effect.context<RunQueue | RunHub>()
          return HttpServerResponse.stream(
            watchBody(params.id, after, format, settings.heartbeatSeconds).pipe(Stream.provideContext(context)),
            {
              contentType: format === "sse" ? "text/event-stream" : "application/x-ndjson",
              headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
            }
          )
        }))
      .handle("cancel", ({ params }) => queue.cancel(params.id))
      .handle("resume", ({ params }) => queue.resume(params.id))
      .handle("remove", ({ params }) => queue.remove(params.id))
      .handle("report", ({ params }) =>
        Effect.gen(function*() {
          yield* queue.record(params.id)
          // Rendered from the run folder as it is now; a GET writes nothing there.
          const page = yield* reportPage(queue.folderOf(params.id), [], { version: simmerVersion }).pipe(
            Effect.mapError((e) => new ServerFailure({ message: e.message }))
          )
          return HttpServerResponse.text(page.html, { contentType: "text/html; charset=utf-8" })
        }))
      .handle("checkpoints", ({ params }) => Effect.andThen(queue.record(params.id), listCheckpoints(queue.folderOf(params.id))))
      .handle("download", ({ params }) =>
        Effect.gen(function*() {
          yield* queue.record(params.id)
          const file = yield* checkpointFile(queue.folderOf(params.id), params.stage, params.file)
          if (file === undefined) {
            return yield* new RunNotFound({ message: `Run ${params.id} has no accepted checkpoint file ${params.stage}/${params.file} (GET …/checkpoints lists them).` })
          }
          return yield* HttpServerResponse.file(file.path, {
            contentType: "application/octet-stream",
            headers: { "x-checksum-sha256": file.sha256, "content-disposition": `attachment; filename="${params.file}"` }
          }).pipe(Effect.mapError((e) => new ServerFailure({ message: e.message })))
        }))
  })
)

export const OpsHandlers = HttpApiBuilder.group(
  SimmerApi,
  "ops",
  Effect.fn(function*(handlers) {
    const queue = yield* RunQueue
    const settings = yield* DaemonConfig
    const compute = yield* Compute
    return handlers
      .handle("readyz", () =>
        Effect.gen(function*() {
          const counts = yield* queue.counts
          if (!(yield* queue.ready)) return yield* new ShuttingDown({ message: "The daemon is not ready: it is starting or shutting down." })
          return {
            ready: true,
            backend: compute.description,
            ...(compute.adapter !== undefined ? { adapter: compute.adapter } : {}),
            queued: counts.queued,
            running: counts.running
          }
        }))
      .handle("metrics", () =>
        Effect.gen(function*() {
          const running = yield* queue.runningProgress
          const text = renderMetrics({
            runsByStatus: yield* queue.counts,
            running: running.map((r) => r.live),
            lastEvaluationSeconds: yield* queue.lastEvaluationSeconds,
            residentBytes: settings.residentBytes(),
            tensors: tf.memory().numTensors
          })
          return HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
        }))
  })
)

export const PublicHandlers = HttpApiBuilder.group(
  SimmerApi,
  "public",
  Effect.fn(function*(handlers) {
    // Read once: the page is one static file with its script inline, no build step.
    const page = readFileSync(pagePath, "utf8")
    return handlers
      .handle("healthz", () => Effect.succeed({ status: "ok" as const }))
      .handle("page", () => Effect.succeed(HttpServerResponse.text(page, { contentType: "text/html; charset=utf-8" })))
  })
)

/** Every group's handlers. */
export const ApiHandlers = Layer.mergeAll(RunsHandlers, OpsHandlers, PublicHandlers)
