/**
 * The daemon's HTTP API, `/v1`, as typed definitions: every request and response is a Schema,
 * so the server's handlers, the CLI's client and the OpenAPI document at `/v1/openapi.json`
 * come from this one file. Shared by server and client, it holds no server code.
 *
 * Streams (SSE / NDJSON events, checkpoint downloads) and pages (the report, the web page) are
 * declared here too, so OpenAPI lists them; their handlers write the bytes themselves.
 */
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, OpenApi } from "effect/http-api"
import { GpuAdapter } from "../compute/WebGpu.ts"
import { Strategy } from "../io/RunEvent.ts"
import { LoggedProgress, RunId, RunRecord, RunStatus } from "../services/JobStore.ts"

export { RunId, RunStatus }

// ---------------------------------------------------------------------------------------------
// Errors: each says in one paragraph what is wrong and carries the facts a script needs.

export class InvalidSubmission extends Schema.TaggedError<InvalidSubmission>()("InvalidSubmission", {
  message: Schema.String,
  /** Each problem with its line and path, as `simmer plan check` prints them. */
  problems: Schema.Array(Schema.String)
}, { httpApiStatus: 400 }) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", { message: Schema.String }, { httpApiStatus: 401 }) {}

export class PathNotAllowed extends Schema.TaggedError<PathNotAllowed>()("PathNotAllowed", {
  message: Schema.String,
  path: Schema.String
}, { httpApiStatus: 403 }) {}

export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", { message: Schema.String }, { httpApiStatus: 404 }) {}

export class RunStateConflict extends Schema.TaggedError<RunStateConflict>()("RunStateConflict", {
  message: Schema.String,
  status: RunStatus
}, { httpApiStatus: 409 }) {}

export class BodyTooLarge extends Schema.TaggedError<BodyTooLarge>()("BodyTooLarge", {
  message: Schema.String,
  limitBytes: Schema.Number
}, { httpApiStatus: 413 }) {}

/** A plan that parses but this daemon can never run: too large for the memory budget, another backend. */
export class PlanNotRunnable extends Schema.TaggedError<PlanNotRunnable>()("PlanNotRunnable", {
  message: Schema.String,
  requiredBytes: Schema.optionalKey(Schema.Number),
  budgetBytes: Schema.optionalKey(Schema.Number)
}, { httpApiStatus: 422 }) {}

export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", { message: Schema.String }, { httpApiStatus: 503 }) {}

export class ServerFailure extends Schema.TaggedError<ServerFailure>()("ServerFailure", { message: Schema.String }, { httpApiStatus: 500 }) {}

// ---------------------------------------------------------------------------------------------
// Views

/** The tuning in progress, from its last step (live only: steps are not logged). */
export const TuningProgress = Schema.Struct({
  tuner: Schema.String,
  step: Schema.Int,
  steps: Schema.Int,
  loss: Schema.Number,
  stepsPerSecond: Schema.Number,
  tokensPerSecond: Schema.Number,
  /** Seconds until this tuning ends at the current rate. */
  etaSeconds: Schema.optionalKey(Schema.Number)
})
export type TuningProgress = typeof TuningProgress.Type

export const Progress = Schema.Struct({
  ...LoggedProgress.fields,
  tuning: Schema.optionalKey(TuningProgress)
})
export type Progress = typeof Progress.Type

/** A run as clients see it: the store's record without its bookkeeping, with live progress. */
const { seq: _seq, first: _first, progress: _progress, ...recordFields } = RunRecord.fields
export const RunView = Schema.Struct({ ...recordFields, progress: Schema.optionalKey(Progress) })
export type RunView = typeof RunView.Type

export const RunDetail = Schema.Struct({
  ...RunView.fields,
  /** The plan as submitted. */
  plan: Schema.String,
  /** The run folder on the server: `simmer report`, `resume` and `inspect` work on it. */
  folder: Schema.String
})
export type RunDetail = typeof RunDetail.Type

export const RunList = Schema.Struct({
  runs: Schema.Array(RunView),
  total: Schema.Int,
  offset: Schema.Int
})

export const CheckpointFile = Schema.Struct({ name: Schema.String, bytes: Schema.Int, sha256: Schema.String })

export const Checkpoint = Schema.Struct({
  /** The stage folder's name, e.g. `ptl-002`. */
  stage: Schema.String,
  strategy: Strategy,
  iteration: Schema.Int,
  /** Whether it is its strategy's final checkpoint. */
  final: Schema.Boolean,
  files: Schema.Array(CheckpointFile)
})
export type Checkpoint = typeof Checkpoint.Type

export const Health = Schema.Struct({ status: Schema.Literal("ok") })

export const Readiness = Schema.Struct({
  ready: Schema.Boolean,
  backend: Schema.String,
  /** On webgpu: the adapter the runs compute on. */
  adapter: Schema.optional(GpuAdapter),
  queued: Schema.Int,
  running: Schema.Int
})

// ---------------------------------------------------------------------------------------------
// Security: a bearer token on every endpoint but /healthz and the page (see Auth.ts).

export class Authorization extends HttpApiMiddleware.Service<Authorization>()("simmer/Authorization", {
  security: { bearer: HttpApiSecurity.bearer },
  error: Unauthorized
}) {}

const idParam = { id: RunId }
const html = Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/html" }))

export class RunsGroup extends HttpApiGroup.make("runs")
  .add(
    HttpApiEndpoint.post("submit", "/", {
      query: {
        name: Schema.optional(Schema.String.check(Schema.isMaxLength(200))),
        priority: Schema.optional(Schema.Int),
        /** The folder the plan's relative paths are read from (default: the daemon's data folder). */
        folder: Schema.optional(Schema.String)
      },
      // The plan as YAML or JSON text; read by the handler within the body limit.
      payload: Schema.String.pipe(HttpApiSchema.asText({ contentType: "application/yaml" })),
      success: RunView.pipe(HttpApiSchema.status(201)),
      error: [InvalidSubmission, PathNotAllowed, PlanNotRunnable, BodyTooLarge, ShuttingDown, ServerFailure]
    }),
    HttpApiEndpoint.get("list", "/", {
      query: {
        status: Schema.optional(RunStatus),
        limit: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 500 }))),
        offset: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))
      },
      success: RunList,
      error: ServerFailure
    }),
    HttpApiEndpoint.get("get", "/:id", { params: idParam, success: RunDetail, error: [RunNotFound, ServerFailure] }),
    HttpApiEndpoint.get("events", "/:id/events", {
      params: idParam,
      query: {
        /** `ndjson` for scripts; Server-Sent Events otherwise. */
        format: Schema.optional(Schema.Literals(["sse", "ndjson"])),
        /** Replay only events after this `seq` (what `Last-Event-ID` says for SSE). */
        after: Schema.optional(Schema.Int)
      },
      /** An SSE client that reconnects sends the last `seq` it received. */
      headers: { "last-event-id": Schema.optional(Schema.String) },
      success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/event-stream" })),
      error: [RunNotFound, ServerFailure]
    }),
    HttpApiEndpoint.post("cancel", "/:id/cancel", { params: idParam, success: RunView, error: [RunNotFound, RunStateConflict, ServerFailure] }),
    HttpApiEndpoint.post("resume", "/:id/resume", {
      params: idParam,
      success: RunView,
      error: [RunNotFound, RunStateConflict, ShuttingDown, ServerFailure]
    }),
    HttpApiEndpoint.delete("remove", "/:id", { params: idParam, success: HttpApiSchema.NoContent, error: [RunNotFound, RunStateConflict, ServerFailure] }),
    HttpApiEndpoint.get("report", "/:id/report", { params: idParam, success: html, error: [RunNotFound, ServerFailure] }),
    HttpApiEndpoint.get("checkpoints", "/:id/checkpoints", { params: idParam, success: Schema.Array(Checkpoint), error: [RunNotFound, ServerFailure] }),
    HttpApiEndpoint.get("download", "/:id/checkpoints/:stage/:file", {
      params: { ...idParam, stage: Schema.String, file: Schema.String },
      success: HttpApiSchema.StreamUint8Array(),
      error: [RunNotFound, ServerFailure]
    })
  )
  .middleware(Authorization)
  .prefix("/v1/runs")
  .annotateMerge(OpenApi.annotations({ title: "Runs", description: "Submit, watch, cancel and resume compression runs" }))
{}

export class OpsGroup extends HttpApiGroup.make("ops", { topLevel: true })
  .add(
    HttpApiEndpoint.get("readyz", "/readyz", { success: Readiness, error: [ShuttingDown, ServerFailure] }),
    HttpApiEndpoint.get("metrics", "/metrics", { success: Schema.String.pipe(HttpApiSchema.asText()), error: ServerFailure })
  )
  .middleware(Authorization)
{}

/** Needs no token: a liveness probe, and the page shell (it holds no data and asks for the token itself). */
export class PublicGroup extends HttpApiGroup.make("public", { topLevel: true })
  .add(
    HttpApiEndpoint.get("healthz", "/healthz", { success: Health }),
    HttpApiEndpoint.get("page", "/", { success: html })
  )
{}

export class SimmerApi extends HttpApi.make("simmer")
  .add(RunsGroup)
  .add(OpsGroup)
  .add(PublicGroup)
  .annotateMerge(OpenApi.annotations({ title: "simmer daemon", version: "1" }))
{}
