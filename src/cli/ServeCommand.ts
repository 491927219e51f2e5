/**
 * `simmer serve`: the daemon. It reads its settings (flags, SIMMER_* through Effect Config),
 * builds the daemon's layers (src/server/Server.ts) on the backend and memory budget its flags
 * choose, and serves until SIGTERM/SIGINT. Then it stops accepting runs
 * (503), asks every running run to stop at its next step boundary and save, waits up to the
 * grace period, and exits with 75: the next start continues those runs by itself.
 *
 * With `--cluster postgres://…` the process joins a fleet (src/cluster/): with
 * `--runner-address` it is a runner that takes runs from the cluster, with the API (default) it
 * serves the same HTTP API and web page and sends each run to the cluster; either or both.
 */
import { mkdir } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Config, Context, Effect, Layer, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { HttpServer, HttpServerError } from "effect/http"
import { NetAddress } from "effect/net"
import { bundledModelPath } from "../pipeline/Plan.ts"
import { serveCluster } from "./ServeCluster.ts"
import { realRoots } from "../server/AllowedRoots.ts"
import { cannotListen, checkCanListen } from "../server/PortCheck.ts"
import { resolveToken } from "../server/Auth.ts"
import { type DaemonSettings, runsDirOf } from "../server/DaemonConfig.ts"
import { processRunExecutor } from "../server/ProcessRunExecutor.ts"
import { RunQueue } from "../server/RunQueue.ts"
import { daemonLayer, daemonPlatform } from "../server/Server.ts"
import { backendFlag, memoryFlag, repeatable, withRange, withShownDefault, workersFlag } from "./Flags.ts"
import { ExitCode, InvalidArguments } from "./Output.ts"
import { hubSettings } from "../hub/HubSettings.ts"

/** The entry file of a run's own process, which builds that run's layers (server/RunProcess.ts). */
const runProcessEntry = fileURLToPath(new URL("RunProcessMain.ts", import.meta.url))


export const defaultPort = 7841

export const serveCommand = Command.make(
  "serve",
  {
    host: Flag.String("host").pipe(
      Flag.withDescription("Address to listen on. Anything but loopback requires a token (--token-file or SIMMER_TOKEN)."),
      withShownDefault("127.0.0.1")
    ),
    port: Flag.Int("port").pipe(Flag.withDescription("TCP port (0: any free port, printed on start)."), withRange({ min: 0, max: 65535 }), withShownDefault(defaultPort)),
    data: Flag.String("data").pipe(
      Flag.withDescription("Data folder: the job store (simmer.db), run folders (runs/<id>), and models/ and data/ for plans."),
      Flag.withFallbackConfig(Config.String("SIMMER_DATA")),
      withShownDefault("simmer-data", "$SIMMER_DATA, else ./simmer-data")
    ),
    models: Flag.String("models").pipe(
      Flag.withDescription(
        "A folder plans may read models and data files from (repeatable). Default: the bundled models, DATA/models, DATA/data and the Hub cache (HF_HUB_CACHE), where models and datasets named by Hub id are fetched."
      ),
      repeatable
    ),
    concurrency: Flag.Int("concurrency").pipe(
      Flag.withDescription("Runs at once, at most; fewer when their memory estimates do not fit the device together."),
      withRange({ min: 1, max: 64 }),
      withShownDefault(1)
    ),
    retries: Flag.Int("retries").pipe(
      Flag.withDescription(
        "Times a run whose process died (kill -9, a native abort, out of memory) is started again, continuing from what it saved, before it fails."
      ),
      withRange({ min: 0, max: 100 }),
      withShownDefault(2)
    ),
    grace: Flag.Finite("grace").pipe(
      Flag.withDescription("Seconds a shutdown (SIGTERM) waits for running runs to reach a step boundary and save."),
      withRange({ min: 0 }, "number"),
      withShownDefault(30)
    ),
    tokenFile: Flag.String("token-file").pipe(
      Flag.withDescription("File holding the bearer token clients must send (created with a random token, mode 0600, if missing)."),
      Flag.optional
    ),
    maxBody: Flag.Int("max-body").pipe(Flag.withDescription("Largest request body accepted, in bytes."), withRange({ min: 1024 }), withShownDefault(1_048_576)),
    heartbeat: Flag.Finite("heartbeat").pipe(
      Flag.withDescription("Seconds between heartbeats on event streams."),
      withRange({ min: 0, minExclusive: true }, "number"),
      withShownDefault(15)
    ),
    backend: backendFlag,
    workers: workersFlag,
    memory: memoryFlag,
    cluster: Flag.String("cluster").pipe(
      Flag.withDescription(
        "Join a cluster whose state is in this Postgres database (postgres://user:password@host:port/db; any Postgres 13+). " +
          "--data must then be the directory every machine of the cluster shares, at the same path."
      ),
      Flag.withFallbackConfig(Config.String("SIMMER_CLUSTER")),
      Flag.optional
    ),
    runnerAddress: Flag.String("runner-address").pipe(
      Flag.withDescription(
        "With --cluster: run runs here, as a runner that the other machines reach at host:port (it listens there)."
      ),
      Flag.optional
    ),
    api: Flag.Boolean("api").pipe(
      Flag.withDescription("With --cluster: serve the HTTP API and web page (the default); --no-api makes this process a runner only."),
      Flag.withDefault(true)
    ),
    lease: Flag.Finite("lease").pipe(
      Flag.withDescription("With --cluster: seconds after which the runs of a runner that went silent (kill -9, network loss) move."),
      withRange({ min: 1 }, "number"),
      withShownDefault(10)
    )
  },
  Effect.fnUntraced(function*(input) {
    // Before anything is created: a port in use leaves no data folder or job store behind.
    if (input.api) yield* checkCanListen(input.host, input.port)
    const dataDir = resolve(input.data)
    for (const dir of [runsDirOf({ dataDir }), join(dataDir, "models"), join(dataDir, "data")]) {
      yield* Effect.promise(() => mkdir(dir, { recursive: true }))
    }
    const envToken = yield* Config.option(Config.Redacted("SIMMER_TOKEN")).pipe(Effect.orElseSucceed(() => Option.none()))
    const token = yield* resolveToken({
      host: input.host,
      tokenFile: Option.getOrUndefined(input.tokenFile),
      envToken: Option.getOrUndefined(envToken)
    })
    // Plans may name models and datasets by Hub id: the daemon fetches them into the Hub cache, a default root.
    const hubCache = (yield* hubSettings).cacheDir
    const roots = input.models.length > 0
      ? input.models.map((m) => resolve(m))
      : [dirname(bundledModelPath), join(dataDir, "models"), join(dataDir, "data"), hubCache]
    const settings: DaemonSettings = {
      dataDir,
      allowedRoots: realRoots(roots),
      concurrency: input.concurrency,
      graceSeconds: input.grace,
      maxBodyBytes: input.maxBody,
      heartbeatSeconds: input.heartbeat,
      token,
      residentBytes: () => process.memoryUsage.rss()
    }
    const platform = daemonPlatform(Option.getOrUndefined(input.backend), Option.getOrUndefined(input.memory))
    const runProcesses = { entry: runProcessEntry, workers: input.workers, retries: input.retries }
    const listen = { host: input.host, port: input.port }

    if (Option.isSome(input.cluster)) {
      return yield* serveCluster(input.cluster.value, {
        runnerAddress: Option.getOrUndefined(input.runnerAddress),
        api: input.api,
        lease: input.lease,
        settings,
        listen,
        platform,
        runProcesses
      })
    }
    if (Option.isSome(input.runnerAddress) || !input.api) {
      return yield* new InvalidArguments({ message: "--runner-address and --no-api belong to cluster mode: add --cluster postgres://…" })
    }
    const live = daemonLayer(settings, platform, processRunExecutor(runProcesses), listen)
    yield* Effect.scoped(Effect.gen(function*() {
      // Another process may take the port between the check above and here.
      const context = yield* Layer.build(live).pipe(
        Effect.catchIf((e) => e instanceof HttpServerError.ServeError, (e) => cannotListen(input.host, input.port, (e as HttpServerError.ServeError).cause))
      )
      const queue = Context.get(context, RunQueue)
      const address = Context.get(context, HttpServer.HttpServer).address
      const where = address._tag === "UnixPathAddress" ? NetAddress.formatSocketAddress(address) : NetAddress.formatUrlUnsafe(address, "http")
      yield* Effect.logInfo(
        `simmer serve: listening on ${where} (data ${dataDir}; plans may read ${settings.allowedRoots.join(", ")}${token !== undefined ? "; token required" : ""})`
      )
      // Until SIGTERM/SIGINT: then drain while the server still answers (503 for new work).
      yield* Effect.never.pipe(
        Effect.onInterrupt(() =>
          Effect.gen(function*() {
            yield* Effect.logInfo("simmer serve: stopping; running runs stop at their next step boundary and save")
            yield* queue.drain
            process.exitCode = ExitCode.preempted
            yield* Effect.logInfo(`simmer serve: stopped (exit ${ExitCode.preempted}); the next start continues interrupted runs`)
          })
        )
      )
    }))
  })
).pipe(
  Command.withDescription(
    "Run the simmer daemon: an HTTP API (/v1, OpenAPI at /v1/openapi.json) and a web page that queue, run, stream and " +
      "resume runs. SIGTERM stops runs at a step boundary with their state saved (exit 75); the next start continues them. " +
      "With --cluster it is one process of a fleet sharing Postgres and a directory: a runner (--runner-address), the API, or both."
  ),
  Command.withExamples([
    { command: "simmer serve --data /var/lib/simmer", description: "Serve on 127.0.0.1:7841" },
    { command: "simmer serve --host 0.0.0.0 --token-file /var/lib/simmer/token", description: "Serve on the network with a bearer token" },
    {
      command: "simmer serve --cluster postgres://simmer@db/simmer --data /mnt/simmer --runner-address gpu-7:34431 --no-api",
      description: "A runner of a cluster (shared directory /mnt/simmer)"
    },
    {
      command: "simmer serve --cluster postgres://simmer@db/simmer --data /mnt/simmer --host 0.0.0.0 --token-file /mnt/simmer/token --concurrency 16",
      description: "The cluster's API and web page (no runs here)"
    }
  ])
)
