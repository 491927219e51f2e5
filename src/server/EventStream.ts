/**
 * A run's events for a watcher, as Server-Sent Events or NDJSON: first the logged events after
 * the watcher's last one (`Last-Event-ID` / `?after=`, the event's `seq`) read from the run's
 * event log, then live ones as they happen, until the run settles. Logged states carry their
 * `seq` as the SSE id, so a client that reconnects resumes exactly where it was: nothing missed,
 * nothing twice. Tuning steps and status changes are live only (no id). SSE adds a comment
 * line as a heartbeat, so proxies and clients can tell a quiet run from a dead connection.
 *
 * No event is lost between the log and the live feed: the watcher subscribes before it reads
 * the log (an event is appended before it is published), and drops live events at or below
 * the last seq it sent.
 */
import { join } from "node:path"
import { Duration, Effect, Stream } from "effect"
import { eventsFileName } from "../io/RunFolder.ts"
import type { RunEvent } from "../io/RunEvent.ts"
import type { TuneProgress } from "../pipeline/RunUpdate.ts"
import { readEvents } from "../io/EventLog.ts"
import { type RunId, type RunStatus, settledStatuses } from "../services/JobStore.ts"
import { RunQueue } from "./RunQueue.ts"
import { type HubItem, RunHub } from "./RunHub.ts"

/** One message to a watcher. */
export type WatchItem =
  | { readonly type: "state"; readonly event: RunEvent }
  | { readonly type: "step"; readonly progress: TuneProgress }
  | { readonly type: "status"; readonly status: RunStatus; readonly error?: string }

export type WatchFormat = "sse" | "ndjson"

const toItem = (item: HubItem): WatchItem =>
  item._tag === "Event"
    ? { type: "state", event: item.event }
    : item._tag === "Step"
    ? { type: "step", progress: item.progress }
    : { type: "status", status: item.status, ...(item.error !== undefined ? { error: item.error } : {}) }

const sseText = (item: WatchItem) => {
  const data = JSON.stringify(item.type === "state" ? item.event : item.type === "step" ? item.progress : { status: item.status, error: item.error })
  return `${item.type === "state" ? `id: ${item.event.seq}\n` : ""}event: ${item.type}\ndata: ${data}\n\n`
}

export const encodeWatchItem = (format: WatchFormat) => (item: WatchItem): string => (format === "sse" ? sseText(item) : JSON.stringify(item) + "\n")

/** The run's messages from just after `after` (all when undefined) until it settles. */
export const watchRun = (id: RunId, after: number | undefined) =>
  Stream.unwrap(Effect.gen(function*() {
    const queue = yield* RunQueue
    const hub = yield* RunHub
    const subscription = yield* hub.subscribe
    const record = yield* queue.record(id)
    const logged = yield* readEvents(join(queue.folderOf(id), eventsFileName)).pipe(Effect.orElseSucceed((): Array<RunEvent> => []))
    let last = after ?? -1
    const replay = logged.filter((e) => e.seq > last)
    if (replay.length > 0) last = replay[replay.length - 1].seq
    const opening: ReadonlyArray<WatchItem> = [...replay.map((event): WatchItem => ({ type: "state", event })), { type: "status", status: record.status, ...(record.error !== undefined ? { error: record.error } : {}) }]
    // A settled run's log is complete: its status is written after its last event.
    if (settledStatuses.includes(record.status)) return Stream.fromIterable(opening)
    const liveItems = Stream.fromSubscription(subscription).pipe(
      Stream.filter((message) => message.id === id),
      Stream.map((message) => toItem(message.item)),
      Stream.filter((item) => {
        if (item.type !== "state") return true
        if (item.event.seq <= last) return false
        last = item.event.seq
        return true
      }),
      Stream.takeUntil((item) => item.type === "status" && settledStatuses.includes(item.status))
    )
    return Stream.concat(Stream.fromIterable(opening), liveItems)
  }))

/** The watch stream as response bytes, with SSE heartbeats every `heartbeatSeconds`. */
export const watchBody = (id: RunId, after: number | undefined, format: WatchFormat, heartbeatSeconds: number) => {
  const text = watchRun(id, after).pipe(Stream.map(encodeWatchItem(format)))
  const withHeartbeat = format === "sse"
    ? text.pipe(Stream.merge(Stream.tick(Duration.seconds(heartbeatSeconds)).pipe(Stream.map(() => ": heartbeat\n\n")), { haltStrategy: "left" }))
    : text
  return Stream.encodeText(withHeartbeat)
}
