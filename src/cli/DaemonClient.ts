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
 * What a watcher gets: the daemon's messages, and `lost` when a connection ended before the run
 * did (the daemon stopped, restarts, or the network dropped); the stream reconnects by itself.
 */
export type ClientWatchItem = WatchItem | { readonly type: "lost"; readonly reason: string }

/**
 * Statuses after which a run changes only when someone asks. `interrupted` is not one for a
 * watcher: it is a daemon that stopped, and its next start continues the run.
 */
export const endedStatuses: ReadonlyArray<RunStatus> = settledStatuses.filter((s) => s !== "interrupted")

const lost = (reason: string): ClientWatchItem => ({ type: "lost", reason })

const isEnd = (item: ClientWatchItem) => item.type === "status" && endedStatuses.includes(item.status)

/**
 * A run's messages from the daemon until it ends: logged states (after `after`), steps and
 * status changes. A connection that ends first — a daemon restart, a proxy timeout — is reopened
 * after the last seq received, every second until the run ends or the watcher is interrupted,
 * so nothing is missed and nothing shown twice.
 */
export const watchStream = (connection: Connection, id: RunId, after?: number): Stream.Stream<ClientWatchItem, DaemonUnreachable> =>
  Stream.unwrap(Effect.gen(function*() {
    const http = yield* httpClientFor(connection)
    let last = after
    let ended = false
    // A function: each connection asks for the events after the last one received so far.
    const once = () => Stream.unwrap(
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
                if (isEnd(item)) ended = true
              })
            )
          )
        )
      )
    )
    const connect = (n: number): Stream.Stream<ClientWatchItem> => {
      const opened: Stream.Stream<ClientWatchItem, DaemonUnreachable> = n === 0
        ? Stream.suspend(once)
        : Stream.fromEffect(Effect.sleep(Duration.seconds(1))).pipe(Stream.drain, Stream.concat(Stream.suspend(once)))
      return opened.pipe(
        Stream.map((item): ClientWatchItem => item),
        Stream.catch((e) => Stream.succeed(lost(e.message))),
        Stream.concat(Stream.suspend(() => (ended ? Stream.empty : Stream.succeed(lost("the daemon closed the stream")))))
      )
    }
    return Stream.iterate(0, (n) => n + 1).pipe(
      Stream.takeWhile(() => !ended),
      Stream.flatMap(connect),
      Stream.takeUntil(isEnd)
    )
  }).pipe(Effect.provide(FetchHttpClient.layer)))
