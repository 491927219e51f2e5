/**
 * Every error the daemon answers carries a JSON body with its reason, as the API's own errors
 * (Api.ts) do. The HTTP layers below the handlers answer some requests with an empty body: a
 * query, path or header that does not decode (400), a path no endpoint has (404). This global
 * middleware gives those a body, `{ _tag, message }`, and answers a path that exists with a
 * method it does not have with 405 and `allow`, as the API definition says.
 */
import { Cause, Effect, SchemaIssue } from "effect"
import { HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiError } from "effect/http-api"
import { SimmerApi } from "./Api.ts"

interface Route {
  readonly method: string
  readonly pattern: RegExp
}

/** Each endpoint's method and path (`/v1/runs/:id` → a pattern that takes one segment). */
const routes: ReadonlyArray<Route> = Object.values(SimmerApi.groups).flatMap((group) =>
  Object.values(group.endpoints).map((endpoint) => ({
    method: endpoint.method,
    pattern: new RegExp(`^${endpoint.path.replace(/:[^/]+/g, "[^/]+").replace(/\/$/, "")}/?$`)
  }))
)

/** The methods the API has for `path`. */
export const methodsOf = (path: string): Array<string> => [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))]

const json = (status: number, _tag: string, message: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.jsonUnsafe({ _tag, message }, { status, headers })

const where: Record<string, string> = { Query: "query parameter", Params: "path", Headers: "header", Payload: "body", Body: "body" }

/** A decode failure in words, with the value given: `limit: expected a value between 1 and 500, got "0"`. */
const decodeMessage = (error: HttpApiError.HttpApiSchemaError, query: URLSearchParams) => {
  const issues = SchemaIssue.makeFormatterStandardSchemaV1()(error.cause.issue).issues.map((i) => {
    const path = (i.path ?? []).map((p) => String(typeof p === "object" && p !== null && "key" in p ? p.key : p)).join(".")
    const given = error.kind === "Query" ? query.get(path) : null
    return `${path !== "" ? `${path}: ` : ""}${i.message.replace(/^Expected /, "expected ")}${given !== null ? `, got ${JSON.stringify(given)}` : ""}`
  })
  return `Invalid ${where[error.kind] ?? error.kind.toLowerCase()}: ${issues.join("; ")}.`
}

export const errorBodies = HttpRouter.middleware((httpEffect) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const [path, search = ""] = request.url.split("?")
    return yield* httpEffect.pipe(
      Effect.catchCause((cause) => {
        const failure = Cause.findErrorOption(cause)
        if (failure._tag === "Some" && HttpServerError.isHttpServerError(failure.value) && failure.value.reason._tag === "RouteNotFound") {
          const allowed = methodsOf(path)
          return Effect.succeed(
            allowed.length > 0
              ? json(405, "MethodNotAllowed", `${path} takes ${allowed.join(", ")}, not ${request.method}.`, { allow: allowed.join(", ") })
              : json(404, "RouteNotFound", `There is no endpoint ${request.method} ${path}; /v1/openapi.json lists them.`)
          )
        }
        const defect = cause.reasons.find(Cause.isDieReason)?.defect
        if (HttpApiError.HttpApiSchemaError.is(defect) && defect.kind !== "ResponseHeaders" && defect.kind !== "Body") {
          return Effect.succeed(json(400, "BadRequest", decodeMessage(defect, new URLSearchParams(search))))
        }
        return Effect.failCause(cause)
      })
    )
  }), { global: true })
