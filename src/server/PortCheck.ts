/**
 * Whether `simmer serve` can listen where it was asked, checked before it creates anything (the
 * data folder, the job store): a port in use is refused with the address and, where this
 * machine can tell (Linux's /proc, a process of the same user), the process holding it.
 */
import { readdir, readFile, readlink } from "node:fs/promises"
import { createServer } from "node:net"
import { Effect, Schema } from "effect"
import { describeCause, errnoCode } from "../io/Errors.ts"

export class CannotListen extends Schema.TaggedError<CannotListen>()("CannotListen", { message: Schema.String }) {}

/** The inodes of sockets listening on `port` (/proc/net/tcp and tcp6: local address, state 0A). */
const listeningInodes = async (port: number): Promise<Set<string>> => {
  const inodes = new Set<string>()
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "")
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10 || fields[3] !== "0A") continue
      if (Number.parseInt(fields[1].split(":").at(-1) ?? "", 16) === port) inodes.add(fields[9])
    }
  }
  return inodes
}

/** "pid 1234 (node bin/simmer.js serve)" for the process holding a listening `port`, when /proc shows it. */
export const portHolder = async (port: number): Promise<string | undefined> => {
  const inodes = await listeningInodes(port)
  if (inodes.size === 0) return undefined
  const pids = (await readdir("/proc").catch(() => [] as Array<string>)).filter((e) => /^\d+$/.test(e))
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as Array<string>)
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "")
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
      if (inode !== undefined && inodes.has(inode)) {
        const command = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").filter((a) => a !== "").join(" ")
        return `pid ${pid}${command !== "" ? ` (${command.length > 120 ? `${command.slice(0, 117)}...` : command})` : ""}`
      }
    }
  }
  return undefined
}

/** Why `host:port` could not be listened on (`cause`: the listen error), naming the holder of a port in use. */
export const cannotListen = (host: string, port: number, cause: unknown) =>
  Effect.gen(function*() {
    if (errnoCode(cause) !== "EADDRINUSE") {
      return yield* new CannotListen({ message: `simmer serve cannot listen on ${host}:${port}: ${describeCause(cause)}.` })
    }
    const holder = yield* Effect.promise(() => portHolder(port))
    return yield* new CannotListen({
      message: `Port ${port} on ${host} is in use${holder !== undefined ? ` by ${holder}` : " by another process"}; ` +
        `stop it or choose another port with --port (--port 0 takes any free one).`
    })
  })

/** Fails with CannotListen when `host:port` cannot be listened on; port 0 (any free port) always can. */
export const checkCanListen = (host: string, port: number) =>
  Effect.tryPromise({
    try: () =>
      new Promise<void>((resolve, reject) => {
        if (port === 0) return resolve()
        const probe = createServer()
        probe.once("error", reject)
        probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()))
      }),
    catch: (cause) => cause
  }).pipe(Effect.catch((cause) => cannotListen(host, port, cause)))
