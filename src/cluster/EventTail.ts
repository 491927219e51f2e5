/**
 * Follows a run's events.ndjson on the shared directory from a process that does not run it:
 * the cluster's API learns what a run on some runner did by reading the log that runner
 * appends (every line fsynced before it is seen). Only complete lines are taken; a line being
 * written is read on the next poll.
 */
import { open } from "node:fs/promises"
import { Duration, Effect } from "effect"
import { errnoCode, fsError } from "../io/Errors.ts"
import { parseEventLog } from "../io/EventLog.ts"
import type { RunEvent } from "../io/RunEvent.ts"

export interface EventTail {
  /** Reads whatever complete lines were appended since the last read and hands over their events. */
  readonly poll: Effect.Effect<void>
  /** Polls forever, every `interval`. */
  readonly follow: (interval: Duration.Input) => Effect.Effect<never>
}

/** A tail of `path` that hands each event with `seq >= fromSeq` to `onEvent`, in order. */
export const tailEvents = (path: string, fromSeq: number, onEvent: (event: RunEvent) => Effect.Effect<void>): EventTail => {
  let offset = 0
  let nextSeq = fromSeq
  const readNew = Effect.tryPromise({
    try: async () => {
      const handle = await open(path, "r").catch((e) => (errnoCode(e) === "ENOENT" ? undefined : Promise.reject(e)))
      if (handle === undefined) return ""
      try {
        const { size } = await handle.stat()
        if (size <= offset) return ""
        const buffer = Buffer.alloc(size - offset)
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset)
        const text = buffer.subarray(0, bytesRead).toString("utf8")
        const end = text.lastIndexOf("\n")
        if (end < 0) return ""
        offset += Buffer.byteLength(text.slice(0, end + 1))
        return text.slice(0, end + 1)
      } finally {
        await handle.close()
      }
    },
    catch: fsError(path, "read")
  })
  const poll = Effect.gen(function*() {
    const text = yield* readNew
    if (text === "") return
    for (const event of yield* parseEventLog(path, text)) {
      if (event.seq < nextSeq) continue
      nextSeq = event.seq + 1
      yield* onEvent(event)
    }
  }).pipe(Effect.catch((e) => Effect.logWarning(`following ${path}: ${e.message}`)))
  return { poll, follow: (interval) => Effect.forever(Effect.andThen(poll, Effect.sleep(interval))) }
}
