/**
 * The CLI's side of the daemon: the typed client generated from the API definition (Api.ts), the
 * server's address (--server, else SIMMER_SERVER, else the local daemon) and its token
 * (SIMMER_TOKEN or --token-file), and a run's events as a stream that reconnects where it left
 * off when the connection drops, so `simmer watch` misses nothing and shows nothing twice.
 */
import { readFile } from "node:fs/promises"
import { Config, Duration, Effect, Option, Redacted, Schema, Stream } from "effect"
import { Flag } from "effect/cli"
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpClientResponse } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { describeCause } from "../io/Errors.ts"
import { RunEvent } from "../io/RunEvent.ts"
import { RunStatus, settledStatuses } from "../services/JobStore.ts"
import { type RunId, SimmerApi } from "../server/Api.ts"
import type { WatchItem } from "../server/EventStream.ts"
import { defaultPort } from "./ServeCommand.ts"

export class DaemonUnreachable extends Schema.TaggedError<DaemonUnreachable>()("DaemonUnreachable", { message: Schema.String }) {}

export const serverFlag = Flag.String("server").pipe(
  Flag.withDescription(`The daemon's URL. Default: $SIMMER_SERVER, else http://127.0.0.1:${defaultPort}.`),
  Flag.withFallbackConfig(Config.String("SIMMER_SERVER")),
  Flag.withDefault(`http://127.0.0.1:${defaultPort}`)
)

export const tokenFileFlag = Flag.String("token-file").pipe(
  Flag.withDescription("File holding the daemon's bearer token. Default: $SIMMER_TOKEN, else no token (enough on loopback)."),
  Flag.optional
)

export interface Connection {
  readonly server: string
  readonly tokenFile: Option.Option<string>
}

const tokenOf = (connection: Connection) =>
  Effect.gen(function*() {
    if (Option.isSome(connection.tokenFile)) {
      const path = connection.tokenFile.value
      return yield* Effect.tryPromise({
        try: () => readFile(path, "utf8").then((t) => t.trim()),
        catch: (cause) => new DaemonUnreachable({ message: `Cannot read the token file ${path}: ${describeCause(cause)}.` })
      })
    }
    const env = yield* Config.option(Config.Redacted("SIMMER_TOKEN")).pipe(Effect.orElseSucceed(() => Option.none()))
    return Option.match(env, { onNone: () => undefined, onSome: Redacted.value })
  })

/** Requests to `connection` with its token; a refused connection says how to start a daemon. */
const httpClientFor = (connection: Connection) =>
  Effect.gen(function*() {
    const token = yield* tokenOf(connection)
    const client = yield* HttpClient.HttpClient
    return client.pipe(
      HttpClient.mapRequest((request) => (token !== undefined && token !== "" ? HttpClientRequest.bearerToken(request, token) : request))
    )
  })

const unreachable = (server: string) => (cause: unknown) =>
  new DaemonUnreachable({
    message: `Cannot reach the simmer daemon at ${server} (${describeCause((cause as { cause?: unknown }).cause ?? cause)}); ` +
      "start one with `simmer serve`, or name it with --server or SIMMER_SERVER."
  })

/** The typed API client for `connection`. */
export const apiClient = (connection: Connection) =>
  Effect.gen(function*() {
    const http = yield* httpClientFor(connection)
    return yield* HttpApiClient.make(SimmerApi, { baseUrl: connection.server }).pipe(Effect.provideService(HttpClient.HttpClient, http))
  }).pipe(Effect.provide(FetchHttpClient.layer))

/** Turns a transport failure (no daemon listening) into a message; API errors pass through. */
export const orUnreachable = (server: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.catchTag("HttpClientError" as never, (e: unknown) => Effect.fail(unreachable(server)(e)))) as Effect.Effect<
    A,
    Exclude<E, { readonly _tag: "HttpClientError" }> | DaemonUnreachable,
    R
  >

const WatchLine = Schema.Union([
  Schema.Struct({ type: Schema.Literal("state"), event: RunEvent }),
  Schema.Struct({ type: Schema.Literal("step"), progress: Schema.Any }),
  Schema.Struct({ type: Schema.Literal("status"), status: RunStatus, error: Schema.optionalKey(Schema.String) })
])
const decodeLine = Schema.decodeUnknownOption(Schema.fromJsonString(WatchLine))

/**
 * A run's messages from the daemon until it settles: logged states (after `after`), steps and
 * status changes. A dropped connection is reopened after the last seq received, a bounded
 * number of times.
 */
export const watchStream = (connection: Connection, id: RunId, after?: number): Stream.Stream<WatchItem, DaemonUnreachable> =>
  Stream.unwrap(Effect.gen(function*() {
    const http = yield* httpClientFor(connection)
    let last = after
    let settled = false
    const once = Stream.unwrap(
      http.get(`${connection.server}/v1/runs/${id}/events?format=ndjson${last !== undefined ? `&after=${last}` : ""}`).pipe(
        Effect.flatMap(HttpClientResponse.filterStatusOk),
        Effect.mapError(unreachable(connection.server)),
        Effect.map((response) =>
          response.stream.pipe(
            Stream.mapError(unreachable(connection.server)),
            Stream.decodeText,
            Stream.splitLines,
            Stream.map((line) => Option.getOrUndefined(decodeLine(line)) as WatchItem | undefined),
            Stream.filter((item): item is WatchItem => item !== undefined),
            Stream.tap((item) =>
              Effect.sync(() => {
                if (item.type === "state") last = item.event.seq
                if (item.type === "status" && settledStatuses.includes(item.status)) settled = true
              })
            )
          )
        )
      )
    )
    // Reconnect while the run has not settled: a daemon restart or a proxy timeout is not the end.
    const attempts = Stream.iterate(0, (n) => n + 1).pipe(Stream.take(60))
    return attempts.pipe(
      Stream.takeWhile(() => !settled),
      Stream.flatMap((n) => (n === 0 ? Stream.suspend(() => once) : Stream.fromEffect(Effect.sleep(Duration.seconds(1))).pipe(Stream.drain, Stream.concat(Stream.suspend(() => once))))
        .pipe(Stream.catch((e) => (n === 59 ? Stream.fail(e) : Stream.empty)))),
      Stream.takeUntil((item) => item.type === "status" && settledStatuses.includes(item.status))
    )
  }).pipe(Effect.provide(FetchHttpClient.layer)))
