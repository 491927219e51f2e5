/**
 * The daemon's RunExecutor in cluster mode: a run starts by sending its persisted `Execute`
 * message to the run's entity; the shard manager places it on a live runner, and moves it when
 * that runner goes. The reply is the run's outcome. Meanwhile this process follows the run's
 * events.ndjson on the shared directory, so the job store, the event streams and the web page
 * see the run exactly as they see a local one (tuning steps, which are not logged, are not seen).
 *
 * Admission happens on the runners (each admits what its DeviceMemory holds), so starting never
 * answers "no room yet" here; the daemon's `--concurrency` caps runs in flight over the fleet.
 * A daemon shutting down detaches from its runs instead of stopping them.
 */
import { join } from "node:path"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Layer } from "effect"
import { eventsFileName } from "../io/RunFolder.ts"
import { readEvents } from "../io/EventLog.ts"
import { type RunHandle, RunExecutor, type RunOutcome } from "../server/RunExecutor.ts"
import { tailEvents } from "./EventTail.ts"
import { RunEntity } from "./RunEntity.ts"

const pollInterval = Duration.millis(250)

export const clusterRunExecutor = Layer.effect(
  RunExecutor,
  Effect.gen(function*() {
    const clientFor = yield* RunEntity.client
    const runs = yield* Effect.scope

    const start: RunExecutor["Service"]["start"] = (job, onUpdate) =>
      Effect.gen(function*() {
        const entity = clientFor(job.id)
        const eventsPath = join(job.dir, eventsFileName)
        const seen = yield* readEvents(eventsPath).pipe(Effect.orElseSucceed(() => []))
        const tail = tailEvents(eventsPath, seen.length, (event) => onUpdate({ _tag: "Event", event }))
        const done = yield* Deferred.make<RunOutcome>()
        const following = yield* Effect.forkIn(tail.follow(pollInterval), runs)
        // An answer that is an interruption (the run's entity was interrupted without its
        // runner shutting down, as a rebalance can) is no outcome: the run is sent again, and
        // continues from its folder wherever its entity lives now.
        const execute: Effect.Effect<RunOutcome> = entity.Execute({ run: job.id }).pipe(
          Effect.catch((e) => Effect.succeed<RunOutcome>({ _tag: "Failed", message: `The cluster could not run ${job.id}: ${e.message ?? e._tag}` })),
          Effect.exit,
          Effect.flatMap((exit) =>
            Exit.isSuccess(exit)
              ? Effect.succeed(exit.value)
              : Cause.hasInterruptsOnly(exit.cause)
              ? Effect.andThen(
                Effect.logWarning(`run ${job.id}: its execution was interrupted on its runner; sending it again`),
                Effect.delay(Effect.suspend(() => execute), Duration.seconds(1))
              )
              : Effect.succeed<RunOutcome>({ _tag: "Failed", message: `The cluster could not run ${job.id}: ${Cause.pretty(exit.cause)}` })
          )
        )
        const execution = yield* Effect.forkIn(
          execute.pipe(
            // Every event the run logged is passed on before its end is.
            Effect.tap(() => Effect.andThen(Fiber.interrupt(following), tail.poll)),
            Effect.flatMap((outcome) => Deferred.succeed(done, outcome))
          ),
          runs
        )
        const end = (outcome: RunOutcome) =>
          Effect.andThen(Effect.all([Fiber.interrupt(execution), Fiber.interrupt(following)], { discard: true }), Deferred.succeed(done, outcome))
        return {
          stop: entity.Stop({ run: job.id }).pipe(Effect.ignore),
          kill: Effect.andThen(entity.Kill({ run: job.id }).pipe(Effect.ignore), end({ _tag: "Killed" })),
          detach: end({ _tag: "Stopped" }).pipe(Effect.asVoid),
          outcome: Deferred.await(done)
        } satisfies RunHandle
      })

    return RunExecutor.of({ start })
  })
)
