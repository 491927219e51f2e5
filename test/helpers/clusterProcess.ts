/**
 * A cluster on loopback for the tests: runner processes (`simmer serve --cluster … --no-api
 * --runner-address 127.0.0.1:PORT`) and an API process (the daemon helper with `--cluster`),
 * all real `bin/simmer.js` processes over one shared data directory and one Postgres.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { join } from "node:path"
import { root } from "./cli.ts"
import { type DaemonProcess, startDaemonProcess } from "./daemonProcess.ts"

export interface RunnerProcess {
  readonly child: ChildProcess
  /** host:port */
  readonly address: string
  readonly log: () => string
  readonly exited: Promise<number | string>
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/** Seconds of silence after which a runner's runs move: short, for the tests. */
export const testLease = 4

export const startRunner = async (dataDir: string, postgresUrl: string, extra: ReadonlyArray<string> = [], lease = testLease): Promise<RunnerProcess> => {
  const address = `127.0.0.1:${await freePort()}`
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        join(root, "bin/simmer.js"),
        "serve",
        "--cluster",
        postgresUrl,
        "--runner-address",
        address,
        "--no-api",
        "--data",
        dataDir,
        "--workers",
        "1",
        "--lease",
        String(lease),
        ...extra
      ],
      // Its own process group, with its runs' processes: the tests freeze a whole runner as a frozen VM is frozen.
      { cwd: root, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, SIMMER_BACKEND: "cpu" }, detached: true }
    )
    let stderr = ""
    const exited = new Promise<number | string>((done) => child.on("exit", (code, signal) => done(code ?? signal ?? "unknown")))
    child.stderr!.on("data", (chunk) => {
      stderr += chunk
      if (stderr.includes(`runner ${address} ready`)) resolve({ child, address, log: () => stderr, exited })
    })
    exited.then((code) => reject(new Error(`runner ${address} exited (${code}) before it was ready:\n${stderr}`)))
  })
}

export const startClusterApi = (dataDir: string, postgresUrl: string, roots: ReadonlyArray<string>, extra: ReadonlyArray<string> = [], lease = testLease): Promise<DaemonProcess> =>
  startDaemonProcess(dataDir, roots, ["--cluster", postgresUrl, "--concurrency", "8", "--lease", String(lease), ...extra])

/** The runner a run is on now: the one whose log says it took the run over last. */
export const holderOf = (runners: ReadonlyArray<RunnerProcess>, id: string): RunnerProcess | undefined => {
  let best: { runner: RunnerProcess; epoch: number } | undefined
  for (const runner of runners) {
    for (const match of runner.log().matchAll(new RegExp(`run ${id}: taken over by \\S+ \\(fencing epoch (\\d+)\\)`, "g"))) {
      const epoch = Number(match[1])
      if (best === undefined || epoch > best.epoch) best = { runner, epoch }
    }
  }
  return best?.runner
}
