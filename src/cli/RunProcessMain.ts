/**
 * The entry of a daemon's run process (src/server/RunProcess.ts, which builds the run's layers
 * from the daemon's `Start`): decodes `Start`, runs the run with the Node services and stderr
 * logging, and exits with the code that says how it ended. ProcessRunExecutor starts this file
 * under a Node that strips types, with an IPC channel.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Schema } from "effect"
import { stoppable } from "../pipeline/Stoppable.ts"
import { type RunProcessEnd, runProcess } from "../server/RunProcess.ts"
import { StartRunJson, startVariable } from "../server/RunProcessProtocol.ts"
import { ExitCode, stderrLogger, stderrLoggerWith } from "./Output.ts"
import { exitWithLauncher } from "./ParentWatch.ts"

const exitCodes: Record<RunProcessEnd, number> = { finished: ExitCode.ok, stopped: ExitCode.preempted, failed: ExitCode.runFailed }

// The daemon gone (even by kill -9): stop at the next step boundary and save, as SIGTERM does.
exitWithLauncher()

const main = Effect.gen(function*() {
  const start = yield* Schema.decodeUnknownEffect(StartRunJson)(process.env[startVariable])
  // Its lines share the daemon's stderr: each names the run.
  return yield* stoppable((stopRequested) =>
    runProcess(start, stopRequested).pipe(Effect.tap((end) => Effect.sync(() => (process.exitCode = exitCodes[end]))))
  ).pipe(Effect.provide(stderrLoggerWith(`run ${start.id}: `)))
}).pipe(
  Effect.provide(NodeServices.layer),
  Effect.provide(stderrLogger)
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => onExit(exit._tag === "Success" ? Number(process.exitCode ?? 0) : Number(process.exitCode ?? ExitCode.defect))
})
