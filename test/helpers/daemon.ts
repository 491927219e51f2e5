/**
 * A real daemon for tests: the same layers `simmer serve` builds (SQLite job store in a file,
 * run folders, each run in its own process, the HTTP server on loopback port 0), on the cpu
 * backend, plus a tiny plan and helpers to call it with a real HTTP client (fetch) and
 * read its event streams.
 */
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Context, Effect, Layer, type Redacted } from "effect"
import { HttpServer } from "effect/http"
import { realRoots } from "../../src/server/AllowedRoots.ts"
import { processRunExecutor, type RunProcessSettings } from "../../src/server/ProcessRunExecutor.ts"
import type { DaemonSettings } from "../../src/server/DaemonConfig.ts"
import { RunQueue } from "../../src/server/RunQueue.ts"
import { daemonLayer, daemonPlatform } from "../../src/server/Server.ts"
import { writeTinyCheckpoint } from "./checkpoint.ts"
import { root } from "./cli.ts"

export interface TestDaemon {
  readonly url: string
  readonly dataDir: string
  readonly queue: RunQueue["Service"]
}

export interface TestDaemonOptions {
  readonly dataDir: string
  readonly roots: ReadonlyArray<string>
  readonly token?: Redacted.Redacted<string>
  readonly memoryGib?: number
  readonly concurrency?: number
  readonly maxBodyBytes?: number
  /** How often a run whose process died is started again (default 2, as `simmer serve`). */
  readonly retries?: number
  /** The memory budget of a run's process (default its reservation). */
  readonly budgetOf?: RunProcessSettings["budgetOf"]
}

/** The entry of a run's own process, as `simmer serve` starts it. */
export const runProcessEntry = join(root, "src/cli/RunProcessMain.ts")

/** Starts a daemon for the life of the scope. */
export const startDaemon = (options: TestDaemonOptions) =>
  Effect.gen(function*() {
    const settings: DaemonSettings = {
      dataDir: options.dataDir,
      allowedRoots: realRoots(options.roots),
      concurrency: options.concurrency ?? 1,
      graceSeconds: 30,
      maxBodyBytes: options.maxBodyBytes ?? 65_536,
      heartbeatSeconds: 0.2,
      token: options.token,
      residentBytes: () => 0
    }
    yield* Effect.promise(() => mkdir(join(options.dataDir, "runs"), { recursive: true }))
    const executor = processRunExecutor({ entry: runProcessEntry, workers: 1, retries: options.retries ?? 2, ...(options.budgetOf !== undefined ? { budgetOf: options.budgetOf } : {}) })
    const context = yield* Layer.build(daemonLayer(settings, daemonPlatform("cpu", options.memoryGib), executor, { host: "127.0.0.1", port: 0 }))
    const address = Context.get(context, HttpServer.HttpServer).address
    if (address._tag !== "InetAddressV4") throw new Error(`unexpected address ${address._tag}`)
    return { url: `http://127.0.0.1:${address.port}`, dataDir: options.dataDir, queue: Context.get(context, RunQueue) } satisfies TestDaemon
  })

/** A plan small enough to finish in about a second on the cpu backend. */
export const tinyPlan = (model: string, options: { readonly steps?: number; readonly iterations?: number; readonly batchSize?: number } = {}) => `
model: ${model}
target: { parameters: 0.6 }
iterations: ${options.iterations ?? 1}
scorer: activation
data:
  tune: [{ task: arith }]
  calibration: [{ task: arith }]
  evaluate: [{ task: program }]
  calibrationExamples: 4
  evaluationExamples: 2
tuner: { steps: ${options.steps ?? 1}, batchSize: ${options.batchSize ?? 2}, lr: 0.01, maxSeqLen: 48 }
backend: cpu
`

/** A tiny checkpoint at `<dir>/model` and the tiny plan beside it. */
export const writeTinyRunInputs = (dir: string) =>
  Effect.gen(function*() {
    yield* writeTinyCheckpoint(join(dir, "model"))
    yield* Effect.promise(() => writeFile(join(dir, "plan.yaml"), tinyPlan("model")))
  })

export interface Reply {
  readonly status: number
  readonly body: any
  readonly text: string
  readonly headers: Headers
}

/** A request with fetch (a real HTTP client); the body parsed as JSON when it is. */
export const call = (url: string, init: RequestInit = {}): Effect.Effect<Reply> =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    let body: unknown = undefined
    try {
      body = JSON.parse(text)
    } catch {
      body = undefined
    }
    return { status: response.status, body, text, headers: response.headers }
  })

export const submit = (daemon: { readonly url: string }, plan: string, query = "", headers: Record<string, string> = {}) =>
  call(`${daemon.url}/v1/runs${query}`, { method: "POST", body: plan, headers: { "content-type": "application/yaml", ...headers } })

/** Polls a run until it has `status` (bounded: 600 polls). */
export const waitForStatus = (daemon: { readonly url: string }, id: string, statuses: ReadonlyArray<string>, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    for (let i = 0; i < 600; i++) {
      const reply = yield* call(`${daemon.url}/v1/runs/${id}`, { headers })
      if (statuses.includes(reply.body?.status)) return reply.body
      yield* Effect.sleep("100 millis")
    }
    return yield* Effect.die(new Error(`run ${id} never reached ${statuses.join(" or ")}`))
  })

/** Parses Server-Sent Events text into messages. */
export const parseSse = (text: string) =>
  text.split("\n\n").filter((block) => block.trim() !== "" && !block.startsWith(":")).map((block) => {
    const fields: Record<string, string> = {}
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue
      const colon = line.indexOf(":")
      fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart()
    }
    return { id: fields.id, event: fields.event, data: fields.data !== undefined ? JSON.parse(fields.data) : undefined }
  })
