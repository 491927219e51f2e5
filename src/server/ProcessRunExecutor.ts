/**
 * Each run in its own process. The daemon's thread serves the API and never computes a tensor:
 * a run's evaluation, tuning and saving happen in a child process (src/cli/RunProcessMain.ts)
 * with its own engine, its own share of the memory budget and its own gradient workers, so runs
 * that fit the budget compute truly side by side, and a run's process that dies — kill -9, a
 * native abort, the kernel's out-of-memory killer — takes only that run with it.
 *
 * The run's updates come back over the IPC channel, Schema-encoded (RunProcessProtocol.ts).
 * Stop is SIGTERM (the run saves at its next step boundary and exits 75), kill is SIGKILL. The
 * exit code tells a run that ended (0 finished, 75 stopped, 4 failed with its message) from a
 * process that died; a died process is started again, up to `retries` times, and continues
 * from what the run saved (its resume state, else its last accepted stage) after logging an
 * `interrupted` event that says what happened.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Fiber, Layer, Queue, Schema, Scope } from "effect"
import { readCheckpointConfig } from "../io/CheckpointFolder.ts"
import { planMemoryAdvice } from "../pipeline/PlanFootprint.ts"
import { runFootprint } from "../pipeline/RunSetup.ts"
import { resolveInference } from "../compute/Inference.ts"
import { failureMessage } from "../pipeline/RunFailure.ts"
import type { RunUpdate } from "../pipeline/RunUpdate.ts"
import { Compute } from "../services/Compute.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { CannotStart, NoRoomYet, type RunJob, type RunOutcome, RunExecutor } from "./RunExecutor.ts"
import { FromRunProcess, type StartRun, StartRunJson, startVariable } from "./RunProcessProtocol.ts"

export interface RunProcessSettings {
  /** The run process's entry file (src/cli/RunProcessMain.ts; `simmer serve` names it). */
  readonly entry: string
  /** Gradient worker threads of each run (the daemon's --workers); its backend is the daemon's. */
  readonly workers: number
  /** How many times a run whose process died is started again before it fails. */
  readonly retries: number
  /** The memory budget a run's process gets, default its reservation (tests starve one run with a smaller one). */
  readonly budgetOf?: (job: RunJob, reservedBytes: number) => number
  /** On a cluster runner: the fence every write of the run is checked against. */
  readonly fence?: (job: RunJob) => StartRun["fence"]
}

const MIB = 2 ** 20
const root = fileURLToPath(new URL("../..", import.meta.url))

/**
 * A Node that runs simmer's TypeScript sources: this one when it strips types (>= 22.19), else
 * the one the `node` dependency installed (as bin/simmer.js chooses).
 */
const typeScriptNode = (): string => {
  const [major, minor] = process.versions.node.split(".").map(Number)
  return major > 22 || (major === 22 && minor >= 19) ? process.execPath : join(root, "node_modules", "node", "bin", "node")
}

/** How one process of a run ended. */
type ProcessEnd =
  | { readonly _tag: "Exited"; readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly failure: string | undefined }
  | { readonly _tag: "NotStarted"; readonly message: string }

/** What the executor learns of a run's current process. */
interface ProcessWatch {
  readonly spawned: (child: ChildProcess) => void
  /** It handles SIGTERM now. */
  readonly ready: () => void
}

type Received = { readonly _tag: "Message"; readonly message: unknown } | { readonly _tag: "End"; readonly end: ProcessEnd }

const decodeMessage = Schema.decodeUnknownEffect(FromRunProcess)
const encodeStart = Schema.encodeSync(StartRunJson)

/** How a process that died ended, in words. */
const describeDeath = (end: ProcessEnd): string =>
  end._tag === "NotStarted"
    ? `could not start: ${end.message}`
    : end.signal === "SIGKILL"
    ? "was killed (SIGKILL: kill -9, or the kernel's out-of-memory killer)"
    : end.signal !== null
    ? `died of ${end.signal}`
    : end.code === 134
    ? "aborted (exit code 134: a native abort, or Node out of heap memory)"
    : `exited with code ${end.code} without saying why`

export const processRunExecutor = (settings: RunProcessSettings): Layer.Layer<RunExecutor, never, DeviceMemory | Compute> =>
  Layer.effect(
    RunExecutor,
    Effect.gen(function*() {
      const memory = yield* DeviceMemory
      const { backend } = yield* Compute
      // Runs belong to the executor: when it goes, whatever still runs ends.
      const runs = yield* Effect.scope

      /** One process of `job`: spawned, its messages passed on in order, until it is gone. */
      const runOnce = (start: StartRun, onUpdate: (update: RunUpdate) => Effect.Effect<void>, watch: ProcessWatch) =>
        Effect.gen(function*() {
          const received = yield* Queue.unbounded<Received>()
          const child = yield* Effect.try(() =>
            spawn(typeScriptNode(), [settings.entry], {
              stdio: ["ignore", "ignore", "inherit", "ipc"],
              serialization: "advanced",
              env: { ...process.env, [startVariable]: encodeStart(start) }
            })
          ).pipe(Effect.catch((e) => Effect.succeed(e)))
          if (!("pid" in child)) return { _tag: "NotStarted", message: String(child) } satisfies ProcessEnd
          watch.spawned(child)
          child.on("message", (message) => Queue.offerUnsafe(received, { _tag: "Message", message }))
          child.on("error", (error) => Queue.offerUnsafe(received, { _tag: "End", end: { _tag: "NotStarted", message: error.message } }))
          // `close` comes after the process exited and its channel closed: no message comes later.
          child.on("close", (code, signal) => Queue.offerUnsafe(received, { _tag: "End", end: { _tag: "Exited", code, signal, failure: undefined } }))
          let failure: string | undefined
          // Leaving early (the executor closes): the process goes with it.
          yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")))
          while (true) {
            const next = yield* Queue.take(received)
            if (next._tag === "End") return next.end._tag === "Exited" ? { ...next.end, failure } : next.end
            const message = yield* decodeMessage(next.message).pipe(Effect.option)
            if (message._tag === "None") {
              // A process of another simmer version, or a bug: say so rather than drop it silently.
              yield* Effect.logWarning(`run ${start.id}: its process sent a message this daemon cannot read; ignored`)
              continue
            }
            if (message.value._tag === "Ready") watch.ready()
            else if (message.value._tag === "Failed") failure = message.value.message
            else yield* onUpdate(message.value.update)
          }
        }).pipe(Effect.scoped)

      const start = (job: RunJob, onUpdate: (update: RunUpdate) => Effect.Effect<void>) =>
        Effect.gen(function*() {
          const { config } = yield* readCheckpointConfig(job.modelPath).pipe(
            Effect.mapError((e) => new CannotStart({ message: e.message }))
          )
          // The engine the run's process will evaluate with (RunProcess resolves it the same way).
          const need = runFootprint(job.plan, config, { inference: yield* resolveInference(undefined, backend), budget: memory.kind })
          const room = yield* Scope.make()
          yield* memory.reserve(`Run ${job.id}`, need, { advice: planMemoryAdvice(need) }).pipe(
            Scope.provide(room),
            Effect.catchTag("MemoryBudgetExceeded", (e) =>
              Effect.andThen(
                Scope.close(room, Exit.void),
                Effect.fail<NoRoomYet | CannotStart>(
                  e.requiredBytes > e.budgetBytes ? new CannotStart({ message: e.message }) : new NoRoomYet({ message: e.message })
                )
              ))
          )
          const reserved = Math.max(1, Math.ceil(need.bytes / MIB)) * MIB
          const fence = settings.fence?.(job)
          const base: StartRun = {
            _tag: "Start",
            id: job.id,
            dir: job.dir,
            backend,
            workers: settings.workers,
            memoryBytes: settings.budgetOf?.(job, reserved) ?? reserved,
            ...(fence !== undefined ? { fence } : {})
          }
          // The process that runs the run, and whether it handles SIGTERM yet (before, SIGTERM would end it unsaved).
          let current: ChildProcess | undefined
          let ready = false
          let asked: "stop" | "kill" | undefined
          const watch: ProcessWatch = {
            spawned: (child) => {
              current = child
              ready = false
              if (asked === "kill") child.kill("SIGKILL")
            },
            ready: () => {
              ready = true
              // Asked before the process was ready: it takes the request now.
              if (asked !== undefined) current?.kill(asked === "stop" ? "SIGTERM" : "SIGKILL")
            }
          }

          const life = Effect.gen(function*() {
            let restartNote: string | undefined
            for (let attempt = 0;; attempt++) {
              const end = yield* runOnce(restartNote === undefined ? base : { ...base, restartNote }, onUpdate, watch)
              current = undefined
              if (asked === "kill") return { _tag: "Killed" } satisfies RunOutcome
              if (end._tag === "Exited") {
                if (end.failure !== undefined) return { _tag: "Failed", message: end.failure } satisfies RunOutcome
                if (end.code === 0) return { _tag: "Finished" } satisfies RunOutcome
                if (end.code === 75) return { _tag: "Stopped" } satisfies RunOutcome
              }
              // A process that died while it was asked to stop: the run continues from what it saved, next time.
              if (asked === "stop") return { _tag: "Stopped" } satisfies RunOutcome
              const how = describeDeath(end)
              if (attempt >= settings.retries) {
                return {
                  _tag: "Failed",
                  message: `The process of run ${job.id} ${how}, ${attempt + 1} time${attempt === 0 ? "" : "s"}; ` +
                    `it was not started again. \`simmer resume ${job.id}\` continues it from what it saved.`
                } satisfies RunOutcome
              }
              restartNote = `The run's process ${how}; started again (retry ${attempt + 1} of ${settings.retries}), continuing from what the run saved.`
              yield* Effect.logWarning(`run ${job.id}: ${restartNote}`)
            }
          }).pipe(Effect.ensuring(Scope.close(room, Exit.void)))
          const fiber = yield* Effect.forkIn(life, runs)
          return {
            stop: Effect.sync(() => {
              asked ??= "stop"
              if (ready) current?.kill("SIGTERM")
            }),
            kill: Effect.sync(() => {
              asked = "kill"
              current?.kill("SIGKILL")
            }),
            outcome: Fiber.await(fiber).pipe(
              Effect.map((exit): RunOutcome => (Exit.isSuccess(exit) ? exit.value : { _tag: "Failed", message: failureMessage(exit.cause) }))
            )
          }
        })

      return RunExecutor.of({ start })
    })
  )
