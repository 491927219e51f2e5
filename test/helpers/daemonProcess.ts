/**
 * `simmer serve` in a child process (bin/simmer.js, as a service manager starts it), for the
 * tests that need a real process to stop: SIGTERM, kill -9. It listens on a free loopback port
 * and says which on stderr; the helper waits for that line.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { root } from "./cli.ts"

export interface DaemonProcess {
  readonly child: ChildProcess
  readonly url: string
  /** Everything it wrote to stderr so far. */
  readonly log: () => string
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>
}

export const startDaemonProcess = (dataDir: string, roots: ReadonlyArray<string>, extra: ReadonlyArray<string> = []): Promise<DaemonProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(root, "bin/simmer.js"), "serve", "--data", dataDir, ...(extra.includes("--port") ? [] : ["--port", "0"]), "--workers", "1", ...roots.flatMap((r) => ["--models", r]), ...extra],
      { cwd: root, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, SIMMER_BACKEND: "cpu" } }
    )
    let stderr = ""
    const exited = new Promise<number | string>((done) => child.on("exit", (code, signal) => done(code ?? signal ?? "unknown")))
    child.stderr!.on("data", (chunk) => {
      stderr += chunk
      const match = stderr.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)
      if (match) resolve({ child, url: match[1], log: () => stderr, exited })
    })
    exited.then((code) => reject(new Error(`simmer serve exited (${code}) before listening:\n${stderr}`)))
  })

/** The events a run folder logged so far. */
export const loggedEvents = (dir: string): Array<any> =>
  existsSync(join(dir, "events.ndjson"))
    ? readFileSync(join(dir, "events.ndjson"), "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l))
    : []

/** Polls `condition` every 10 ms, up to a minute. */
export const waitUntil = async (condition: () => boolean, what: string) => {
  for (let i = 0; i < 6000 && !condition(); i++) await new Promise((r) => setTimeout(r, 10))
  if (!condition()) throw new Error(`gave up waiting for ${what}`)
}
