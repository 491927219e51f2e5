/**
 * A throw-away Postgres server for the cluster tests: Debian's `postgresql` binaries, a fresh
 * data directory (initdb, trust authentication) and a free loopback port, started as a non-root
 * user (Postgres refuses to run as root, and CI runs as root), stopped and removed at the end.
 * It can be restarted mid-test to prove the runners reconnect.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Postgres {
  /** postgres://… of the `simmer` database. */
  readonly url: string
  readonly port: number
  /** Stops the server (fast shutdown: clients are disconnected). */
  readonly stop: () => void
  /** Starts it again on the same port and data directory. */
  readonly start: () => void
  /** Stops it and removes its data directory. */
  readonly destroy: () => void
}

/** The folder of Debian's Postgres binaries (the newest installed major version). */
const binDir = (): string => {
  const base = "/usr/lib/postgresql"
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, "bin", "pg_ctl"))).sort((a, b) => Number(b) - Number(a)) : []
  if (versions.length === 0) {
    throw new Error("Postgres is not installed (no /usr/lib/postgresql/*/bin/pg_ctl): `apt-get install -y postgresql` (.ci/run does it).")
  }
  return join(base, versions[0], "bin")
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/** The user the server runs as: `nobody` when we are root, else ourselves. */
const asUser = (command: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  process.getuid?.() === 0 ? ["runuser", ["-u", "nobody", "--", command, ...args]] : [command, [...args]]

const run = (command: string, args: ReadonlyArray<string>) => {
  const [file, argv] = asUser(command, args)
  const result = spawnSync(file, argv, { encoding: "utf8", cwd: "/" })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`)
}

export const startPostgres = async (): Promise<Postgres> => {
  const bin = binDir()
  const root = mkdtempSync(join(tmpdir(), "simmer-pg-"))
  chmodSync(root, 0o755)
  const data = join(root, "data")
  const socketDir = root
  if (process.getuid?.() === 0) {
    // nobody's group differs between systems; the uid is what Postgres checks.
    const nobody = Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim())
    chownSync(root, nobody, -1)
  }
  run(join(bin, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
  const port = await freePort()
  const start = () =>
    run(join(bin, "pg_ctl"), [
      "-D",
      data,
      "-l",
      join(root, "server.log"),
      "-w",
      "-t",
      "30",
      "-o",
      `-p ${port} -k ${socketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
      "start"
    ])
  const stop = () => run(join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"])
  start()
  run(join(bin, "createdb"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "simmer"])
  return {
    url: `postgres://postgres@127.0.0.1:${port}/simmer`,
    port,
    start,
    stop,
    destroy: () => {
      try {
        stop()
      } catch {
        // already stopped
      }
      rmSync(root, { recursive: true, force: true })
    }
  }
}
