/**
 * The Prune-Tune Loop as a Stream of model states.
 *
 * One iteration: prune the last accepted model a step towards the target (score, then surgery)
 * → tune it with each of the plan's tuners in turn on the iteration's data → evaluate → gate. A
 * passed gate checkpoints the model and accepts it; a failed gate rolls back to the last
 * accepted model and retries the iteration with half the step, `gates.retries` times, then stops
 * (or fails with GateFailed). The run ends when the target is reached or no step can pass.
 *
 * Baselines run in the same machinery: `one-shot` prunes to the target in one iteration and
 * tunes with the whole budget of the loop; `prune-only` prunes to the target and does not tune.
 *
 * Every stream element is produced by one pull: a stage's resulting state, or one tuning step's
 * progress, so consumers see the run as it happens and a stop request is honoured at the next
 * step boundary. Models live in scopes of their own inside the stream's scope (Models.ts): a
 * superseded or rolled-back one is released at once, and the rest when the stream ends, however
 * it ends. A state's model is valid until the next element is pulled.
 *
 * Stopping: when `stopRequested` says so at a boundary, a tuning in progress (or a tuned model
 * awaiting evaluation) is saved to the run store as a resume point, an `interrupted` state is
 * emitted, and the stream ends; resuming continues exactly from there.
 */
import type { InferenceEngine } from "../compute/Inference.ts"
import { Effect, Exit, Schema, Scope, Stream } from "effect"
import type { DatasetScore, Strategy } from "../io/RunEvent.ts"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import type { Model } from "../model/Model.ts"
import { countParams } from "../model/Params.ts"
import { halfStep, scheduledCounts } from "../prune/Schedule.ts"
import { unitCounts } from "../prune/Select.ts"
import type { Dataset } from "../services/Datasets.ts"
import type { FileSystemError } from "../io/Errors.ts"
import type { CorruptRunFile } from "../io/RunFolder.ts"
import { RunStore, type StageContent, type StageSaveError } from "../services/RunStore.ts"
import type { InvalidTunerState, Tuner, TunerSession, TunerSnapshot } from "../tune/Tuner.ts"
import { failedGates } from "./Gates.ts"
import { acquireModel, type HeldModel, replaceModel } from "./Models.ts"
import type { ModelState, Stage } from "./ModelState.ts"
import { type Plan, plannedTuningSteps, planUnitsOf, tuningStepsAt, type Unit } from "./Plan.ts"
import { encodeResumeInfo, type IterationRecord, type TuningSoFar } from "./ResumePoint.ts"
import type { LoopUpdate } from "./RunUpdate.ts"
import { finalCounts } from "./Targets.ts"

export class GateFailed extends Schema.TaggedError<GateFailed>()("GateFailed", {
  iteration: Schema.Int,
  history: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** What the loop itself can fail with, besides the errors of its stages (E). */
export type LoopError<E> = E | GateFailed | InvalidTunerState | StageSaveError | FileSystemError | CorruptRunFile

/** Prunes a model to the given units per layer of one kind; the input model stays valid. */
export type PruneFn<E, R> = (model: Model, unit: Unit, keep: ReadonlyArray<number>, iteration: number) => Effect.Effect<Model, E, R>

/** A tuner of the plan's list with its budget: steps per iteration, one count or one per planned iteration. */
export interface PlannedTuner<E, R> {
  readonly tuner: Tuner<E, R>
  readonly steps: number | ReadonlyArray<number>
}

/** What every tuning of the run draws on. */
export interface TuningInputs {
  readonly seed: number
  readonly tokenizer: Tokenizer
  readonly datasets: ReadonlyArray<Dataset>
  /** Each iteration trains on its own chunk of the training split; otherwise every iteration reuses chunk 0. */
  readonly freshChunks: boolean
  /** The device budget block-by-block tuning checks its uploads against (DeviceMemory's). */
  readonly room: DeviceRoom
  /** The engine tuners read models with where it only reads them (TuneContext.inference). */
  readonly inference?: InferenceEngine
}

export interface LoopSetup<EP, RP, ET, RT, EE = never, RE = never, ES = never, RS = never> {
  readonly plan: Plan
  readonly strategy: Strategy
  /** How checkpoints are written: the original folder's config and files. */
  readonly stageTemplate: Omit<StageContent, "config" | "params">
  /** The original model's evaluation (iteration 0), which the gates compare against. */
  readonly originalMetrics: Readonly<Record<string, DatasetScore>>
  /** The original model: the schedule runs from its shape; it belongs to the caller. */
  readonly original: Model
  /** The metrics of a state (the evaluate stage; see Evaluation.evaluateModel). */
  readonly evaluate: (state: ModelState) => Effect.Effect<Record<string, DatasetScore>, EE, RE>
  readonly prune: PruneFn<EP, RP>
  /** Tuners run in order within every iteration (an empty list: no tuning). */
  readonly tuners: ReadonlyArray<PlannedTuner<ET, RT>>
  readonly tuning: TuningInputs
  /** A user stage run on every tuned model before it is evaluated (e.g. quantization). */
  readonly afterTune?: Stage<ES, RS>
  /** Asked at every step boundary; `true` makes the loop save what it is doing and stop. */
  readonly stopRequested?: Effect.Effect<boolean>
}

/** Where an interrupted iteration continues (see ResumePoint.ts for its saved form). */
export interface ResumeStart {
  readonly iteration: number
  readonly attempt: number
  readonly goal: ReadonlyArray<readonly [Unit, ReadonlyArray<number>]>
  /** Position in the tuner list to continue at; the list's length when only evaluation was left. */
  readonly tuner: number
  /** The candidate's weights at that point. */
  readonly model: HeldModel
  /** The running tuner's saved state, when it had started. */
  readonly snapshot?: TunerSnapshot
  /** What the iteration had recorded before it was interrupted (absent in older saved state). */
  readonly record?: IterationRecord
}

/** Where a (possibly resumed) loop starts: the accepted model, its iteration, and an iteration in progress. */
export interface LoopStart {
  readonly accepted: HeldModel
  readonly acceptedStage: string
  readonly iteration: number
  /** The attempt on which the accepted model passed (0: its full step); the next step starts smaller after a halved pass. */
  readonly acceptedAttempt?: number
  /** The accepted model's evaluation, for the `finished` state. */
  readonly acceptedMetrics?: Readonly<Record<string, DatasetScore>>
  readonly resume?: ResumeStart
}

type Goal = Map<Unit, Array<number>>

interface Candidate {
  readonly state: ModelState
  readonly held: HeldModel
}

interface Tuning<E, R> {
  readonly session: TunerSession<E, R>
  readonly scope: Scope.Closeable
  readonly kind: string
  /** When this process started (or resumed) the tuning, for rates. */
  readonly started: number
  /** Seconds the tuning took before it was resumed. */
  readonly priorSeconds: number
  /** Every step's loss, tokens and measurements, steps before a resume included. */
  readonly losses: Array<number>
  readonly metrics: Record<string, Array<number>>
  tokens: number
}

type Cursor<ET, RT> =
  | { readonly kind: "prune"; readonly iteration: number; readonly attempt: number; readonly goal: Goal }
  | {
    readonly kind: "tune"
    readonly candidate: Candidate
    readonly goal: Goal
    readonly position: number
    readonly snapshot?: TunerSnapshot
    readonly soFar?: TuningSoFar
  }
  | { readonly kind: "step"; readonly candidate: Candidate; readonly goal: Goal; readonly position: number; readonly tuning: Tuning<ET, RT> }
  | { readonly kind: "evaluate"; readonly candidate: Candidate; readonly goal: Goal }
  | { readonly kind: "gate"; readonly candidate: Candidate; readonly goal: Goal }
  | { readonly kind: "finish" }
  | { readonly kind: "done" }

const sameCounts = (a: Goal, b: Goal) =>
  [...a.entries()].every(([unit, counts]) => counts.every((c, i) => c === b.get(unit)?.[i]))

/**
 * Units the loop steers by: per layer, or with global allocation (neurons, heads) one total
 * over all layers, since the ranking decides how the layers share it.
 */
const countsView = (allocation: Plan["allocation"], unit: Unit, counts: ReadonlyArray<number>): Array<number> =>
  allocation === "global" && unit !== "layers" ? [counts.reduce((a, b) => a + b, 0)] : [...counts]

/** A goal in the loop's view: per-layer counts as the allocation steers them. */
const goalView = (allocation: Plan["allocation"], counts: ReadonlyMap<Unit, ReadonlyArray<number>>): Goal =>
  new Map([...counts].map(([unit, c]) => [unit, countsView(allocation, unit, c)]))

const countsOf = (model: Model, units: ReadonlyArray<Unit>, allocation: Plan["allocation"]): Goal =>
  goalView(allocation, new Map(units.map((unit) => [unit, unitCounts(model.config, unit)])))

/** Units of each kind removed in all layers going from `from` to `to`. */
const unitsRemoved = (from: Goal, to: Goal): Array<readonly [Unit, number]> =>
  [...from.entries()].map(([unit, counts]) => [unit, counts.reduce((s, c, l) => s + c - to.get(unit)![l], 0)] as const)

/** The `pruned` record of a step: each kind counted on its own (neurons and key/value groups are not one unit). */
const prunedRecord = (removed: ReadonlyArray<readonly [Unit, number]>, detail: string): NonNullable<ModelState["pruned"]> => ({
  unit: removed[0][0],
  removed: removed[0][1],
  ...(removed.length > 1 ? { perUnit: Object.fromEntries(removed) } : {}),
  detail
})

const describeGoal = (goal: Goal) =>
  [...goal.entries()].map(([unit, counts]) => `${unit} ${[...new Set(counts)].join("/")}`).join(", ")

export const stageName = (strategy: Strategy, iteration: number) => `${strategy}-${String(iteration).padStart(3, "0")}`

const elapsed = (since: number) => (performance.now() - since) / 1000

/** What a tuning has recorded so far, to be saved with its snapshot. */
const tuningSoFar = (tuning: Tuning<unknown, unknown>): TuningSoFar => ({
  losses: [...tuning.losses],
  tokens: tuning.tokens,
  metrics: Object.fromEntries(Object.entries(tuning.metrics).map(([name, values]) => [name, [...values]])),
  seconds: tuning.priorSeconds + elapsed(tuning.started)
})

export const runLoop = <EP, RP, ET, RT, EE = never, RE = never, ES = never, RS = never>(
  setup: LoopSetup<EP, RP, ET, RT, EE, RE, ES, RS>,
  start: LoopStart
): Stream.Stream<LoopUpdate, LoopError<EP | ET | EE | ES>, RP | RT | RE | RS | RunStore> =>
  Stream.unwrap(Effect.gen(function*() {
    const store = yield* RunStore
    const runScope = yield* Effect.scope
    const { plan, strategy } = setup
    const stopRequested = setup.stopRequested ?? Effect.succeed(false)
    const units = planUnitsOf(plan)
    const final = goalView(plan.allocation, finalCounts(setup.original.config, plan))
    const initial = countsOf(setup.original, units, plan.allocation)
    const oneShot = strategy !== "ptl"
    const iterations = oneShot ? 1 : plan.iterations
    /** Steps of tuner `position` in `iteration`: its own budget, a baseline's sum of them, or none. */
    const tuningSteps = (position: number, iteration: number) => {
      const steps = setup.tuners[position].steps
      return strategy === "prune-only" ? 0 : oneShot ? plannedTuningSteps(steps, plan.iterations) : tuningStepsAt(steps, iteration)
    }
    // The loop may need extra iterations when rolled-back steps were halved; this bounds the run.
    const maxIterations = oneShot ? 1 : 2 * plan.iterations
    let accepted = start.accepted
    let acceptedStage = start.acceptedStage
    let acceptedAttempt = start.acceptedAttempt ?? 0
    let acceptedIteration = start.iteration
    let acceptedMetrics = start.acceptedMetrics ?? setup.originalMetrics
    const history: Array<string> = []

    /**
     * The scheduled goal of iteration i, never above what the accepted model already has. When
     * the accepted model needed halved steps to pass, the step grows back one halving at a
     * time instead of retrying the full scheduled step that just failed (each failed attempt
     * costs a whole tuning).
     */
    const goalFor = (iteration: number): Goal => {
      const now = countsOf(accepted, units, plan.allocation)
      return new Map(units.map((unit) => {
        const scheduled = scheduledCounts(oneShot ? "one-shot" : plan.schedule, initial.get(unit)!, final.get(unit)!, iteration, iterations)
        let goal = scheduled.map((c, l) => Math.min(c, now.get(unit)![l]))
        for (let h = 1; h < acceptedAttempt; h++) goal = halfStep(now.get(unit)!, goal)
        return [unit, goal]
      }))
    }

    const atTarget = () => sameCounts(countsOf(accepted, units, plan.allocation), final)

    const stateOf = (model: Model, iteration: number, attempt: number, phase: ModelState["phase"], extra: Partial<ModelState> = {}): ModelState => ({
      strategy,
      iteration,
      attempt,
      phase,
      model,
      timings: {},
      ...extra
    })

    const emit = <C>(state: ModelState, next: C) => [{ _tag: "State", state } as LoopUpdate, next] as const

    /** Saves where an iteration stands so a resume continues from there; says in the event what happened. */
    const saveAndStop = Effect.fn("Loop.saveAndStop")(function*(
      candidate: Candidate,
      goal: Goal,
      position: number,
      weights: Model,
      where: string,
      tuner?: { kind: string; snapshot: TunerSnapshot; soFar: TuningSoFar }
    ) {
      const { iteration, attempt, timings, pruned, tune } = candidate.state
      const record: IterationRecord = {
        timings,
        ...(pruned !== undefined ? { pruned } : {}),
        ...(tune !== undefined ? { tune } : {}),
        ...(tuner !== undefined ? { tuning: tuner.soFar } : {})
      }
      const info = encodeResumeInfo({
        format: "simmer-resume-v2",
        strategy,
        iteration,
        attempt,
        goal: [...goal.entries()],
        tuner: position,
        ...(tuner !== undefined ? { tunerKind: tuner.kind, tunerState: tuner.snapshot.state } : {}),
        record
      })
      const saved = yield* Effect.result(store.saveResume({ info, model: { ...setup.stageTemplate, ...weights }, tensors: tuner?.snapshot.tensors ?? [] }))
      const message = saved._tag === "Success"
        ? `interrupted in iteration ${iteration} ${where}; its state is saved in ${store.dir}/${saved.success}: \`simmer resume ${store.dir}\` continues from there`
        : `interrupted in iteration ${iteration} ${where}, but its state could not be saved (${saved.failure.message}); ` +
          `the accepted checkpoint ${acceptedStage} is intact and \`simmer resume ${store.dir}\` restarts iteration ${iteration} from it`
      return emit(stateOf(weights, iteration, attempt, "interrupted", { message }), { kind: "done" } as Cursor<ET, RT>)
    })

    const stopBeforeWork = (iteration: number) =>
      emit(
        stateOf(accepted, iteration, 0, "interrupted", {
          message: `interrupted before iteration ${iteration}: \`simmer resume ${store.dir}\` starts it from ${acceptedStage}`
        }),
        { kind: "done" } as Cursor<ET, RT>
      )

    const tuningContext = (position: number, candidate: Candidate, steps: number) => ({
      iteration: candidate.state.iteration,
      steps,
      seed: setup.tuning.seed * 7919 + candidate.state.iteration + 104729 * position,
      tokenizer: setup.tuning.tokenizer,
      datasets: setup.tuning.datasets,
      chunk: setup.tuning.freshChunks ? candidate.state.iteration : 0,
      original: setup.original,
      room: setup.tuning.room,
      ...(setup.tuning.inference !== undefined ? { inference: setup.tuning.inference } : {})
    })

    const resumed = (resume: ResumeStart): Cursor<ET, RT> => {
      const goal = new Map(resume.goal.map(([u, c]) => [u, [...c]]))
      // The candidate as it stood, with what it had recorded (its timings, pruning, last tuning).
      const { tuning: soFar, ...recorded } = resume.record ?? { timings: {} }
      const candidate = {
        held: resume.model,
        state: stateOf(resume.model, resume.iteration, resume.attempt, "pruned", { ...recorded, timings: recorded.timings ?? {} })
      }
      // Past the last tuner the model was tuned (and through afterTune) and only waits for its evaluation.
      return resume.tuner >= setup.tuners.length
        ? { kind: "evaluate", candidate, goal }
        : {
          kind: "tune",
          candidate,
          goal,
          position: resume.tuner,
          ...(resume.snapshot !== undefined ? { snapshot: resume.snapshot } : {}),
          ...(resume.snapshot !== undefined && soFar !== undefined ? { soFar } : {})
        }
    }

    const first: Cursor<ET, RT> = start.resume !== undefined
      ? resumed(start.resume)
      : atTarget() || start.iteration >= maxIterations
      ? { kind: "finish" }
      : { kind: "prune", iteration: start.iteration + 1, attempt: 0, goal: goalFor(start.iteration + 1) }

    /** One move of the loop, traced as a span named after it (Loop.prune, Loop.tune, Loop.step for one tuning step, ...). */
    const step = (cursor: Cursor<ET, RT>): Effect.Effect<readonly [LoopUpdate, Cursor<ET, RT>] | undefined, LoopError<EP | ET | EE | ES>, RP | RT | RE | RS> =>
      Effect.gen(function*() {
        switch (cursor.kind) {
          case "done":
            return undefined
          case "finish": {
            const reached = atTarget()
            const share = countParams(accepted.config).nonEmbedding / countParams(setup.original.config).nonEmbedding
            const finished = stateOf(accepted, acceptedIteration, 0, "finished", {
              metrics: acceptedMetrics,
              checkpoint: acceptedStage,
              targetReached: reached,
              ...(reached ? {} : {
                message: `target not reached: stopped at ${(share * 100).toFixed(1)}% of the original's non-embedding parameters` +
                  (history.length > 0 ? "; the smaller steps after it failed the gates" : `; the loop ran its ${maxIterations} iterations`)
              })
            })
            return emit(finished, { kind: "done" } as Cursor<ET, RT>)
          }
          case "prune": {
            if (yield* stopRequested) return stopBeforeWork(cursor.iteration)
            const started = performance.now()
            let model: HeldModel = accepted
            for (const unit of units) {
              const goal = cursor.goal.get(unit)!
              if (countsOf(model, [unit], plan.allocation).get(unit)!.every((c, l) => c === goal[l])) continue
              const pruned = yield* acquireModel(setup.prune(model, unit, goal, cursor.iteration)).pipe(Scope.provide(runScope))
              if (model !== accepted) yield* model.release
              model = pruned
            }
            const state = stateOf(model, cursor.iteration, cursor.attempt, "pruned", {
              timings: { prune: elapsed(started) },
              pruned: prunedRecord(unitsRemoved(countsOf(accepted, units, plan.allocation), cursor.goal), describeGoal(cursor.goal))
            })
            return emit(state, { kind: "tune", candidate: { state, held: model }, goal: cursor.goal, position: 0 } as Cursor<ET, RT>)
          }
          case "tune": {
            const { candidate, position } = cursor
            if (position >= setup.tuners.length) {
              if (setup.afterTune === undefined) return yield* step({ kind: "evaluate", candidate, goal: cursor.goal })
              const after = yield* setup.afterTune(candidate.state)
              const held = yield* replaceModel(candidate.held, after.model).pipe(Scope.provide(runScope))
              return emit(after, { kind: "evaluate", candidate: { state: after, held }, goal: cursor.goal } as Cursor<ET, RT>)
            }
            const steps = tuningSteps(position, candidate.state.iteration)
            if (steps === 0) return yield* step({ kind: "tune", candidate, goal: cursor.goal, position: position + 1 })
            const { tuner } = setup.tuners[position]
            const context = tuningContext(position, candidate, steps)
            const scope = yield* Scope.fork(runScope)
            const session = yield* (cursor.snapshot !== undefined
              ? tuner.resume(candidate.held, cursor.snapshot, context)
              : tuner.start(candidate.held, context)).pipe(
                Scope.provide(scope),
                Effect.onError(() => Scope.close(scope, Exit.void))
              )
            // A resumed tuning goes on counting from where it stopped.
            const soFar = cursor.soFar
            const tuning: Tuning<ET, RT> = {
              session,
              scope,
              kind: tuner.kind,
              started: performance.now(),
              priorSeconds: soFar?.seconds ?? 0,
              losses: [...(soFar?.losses ?? [])],
              metrics: Object.fromEntries(Object.entries(soFar?.metrics ?? {}).map(([name, values]) => [name, [...values]])),
              tokens: soFar?.tokens ?? 0
            }
            return yield* step({ kind: "step", candidate, goal: cursor.goal, position, tuning })
          }
          case "step": {
            const { candidate, position, tuning } = cursor
            const { session } = tuning
            if (session.stepsDone() >= session.steps) {
              const tunedModel = yield* session.finish
              // A tuner may hand back some of the tensors it was given (frozen weights).
              const held = yield* replaceModel(candidate.held, tunedModel).pipe(Scope.provide(runScope))
              yield* Scope.close(tuning.scope, Exit.void)
              const { adapter } = setup.tuners[position].tuner
              const state: ModelState = {
                ...candidate.state,
                phase: "tuned",
                model: held,
                tune: {
                  kind: tuning.kind,
                  ...(adapter !== undefined ? { adapter } : {}),
                  steps: tuning.losses.length,
                  tokens: tuning.tokens,
                  losses: tuning.losses,
                  ...(Object.keys(tuning.metrics).length > 0 ? { metrics: tuning.metrics } : {})
                },
                timings: { ...candidate.state.timings, tune: (candidate.state.timings.tune ?? 0) + tuning.priorSeconds + elapsed(tuning.started) }
              }
              return emit(state, { kind: "tune", candidate: { state, held }, goal: cursor.goal, position: position + 1 } as Cursor<ET, RT>)
            }
            if (yield* stopRequested) {
              const snapshot = yield* session.snapshot
              return yield* saveAndStop(candidate, cursor.goal, position, session.current(), `at ${tuning.kind} step ${session.stepsDone()} of ${session.steps}`, {
                kind: tuning.kind,
                snapshot,
                soFar: tuningSoFar(tuning)
              })
            }
            // Kernels run synchronously; yielding lets a signal be seen between steps.
            yield* Effect.yieldNow
            const done = yield* session.step
            tuning.losses.push(done.loss)
            tuning.tokens += done.tokens
            for (const [name, value] of Object.entries(done.metrics)) (tuning.metrics[name] ??= []).push(value)
            const progress = {
              strategy,
              iteration: candidate.state.iteration,
              attempt: candidate.state.attempt,
              tuner: tuning.kind,
              position,
              step: done.step,
              steps: session.steps,
              loss: done.loss,
              tokens: done.tokens,
              tuningTokens: tuning.tokens,
              metrics: done.metrics,
              seconds: elapsed(tuning.started)
            }
            return [{ _tag: "Step", progress } as LoopUpdate, cursor] as const
          }
          case "evaluate": {
            const { candidate } = cursor
            if (yield* stopRequested) return yield* saveAndStop(candidate, cursor.goal, setup.tuners.length, candidate.held, "after tuning, before evaluation")
            const started = performance.now()
            const metrics = yield* setup.evaluate(candidate.state)
            const evaluated: ModelState = {
              ...candidate.state,
              phase: "evaluated",
              metrics,
              timings: { ...candidate.state.timings, evaluate: elapsed(started) }
            }
            return emit(evaluated, { kind: "gate", candidate: { ...candidate, state: evaluated }, goal: cursor.goal } as Cursor<ET, RT>)
          }
          case "gate": {
            const candidate = cursor.candidate.state
            const failures = oneShot ? [] : failedGates(plan.gates, candidate.metrics ?? {}, setup.originalMetrics)
            if (failures.length === 0) {
              const started = performance.now()
              const stage = yield* store.saveStage(stageName(strategy, candidate.iteration), { ...setup.stageTemplate, ...cursor.candidate.held })
              yield* store.markAccepted({ stage, iteration: candidate.iteration, strategy })
              yield* store.clearResume
              yield* accepted.release
              accepted = cursor.candidate.held
              acceptedStage = stage
              acceptedAttempt = candidate.attempt
              acceptedIteration = candidate.iteration
              acceptedMetrics = candidate.metrics ?? {}
              const done = atTarget() || candidate.iteration >= maxIterations
              const acceptedState: ModelState = {
                ...candidate,
                phase: "accepted",
                checkpoint: stage,
                timings: { ...candidate.timings, checkpoint: elapsed(started) }
              }
              const next: Cursor<ET, RT> = done
                ? { kind: "finish" }
                : { kind: "prune", iteration: candidate.iteration + 1, attempt: 0, goal: goalFor(candidate.iteration + 1) }
              return emit(acceptedState, next)
            }
            const reason = `iteration ${candidate.iteration} attempt ${candidate.attempt} (${describeGoal(cursor.goal)}): ${failures.join("; ")}`
            history.push(reason)
            const rolledBack: ModelState = { ...candidate, phase: "rolled-back", model: accepted, message: failures.join("; ") }
            yield* cursor.candidate.held.release
            yield* store.clearResume
            const now = countsOf(accepted, units, plan.allocation)
            const halved: Goal = new Map(units.map((u) => [u, halfStep(now.get(u)!, cursor.goal.get(u)!)]))
            const canRetry = candidate.attempt < plan.gates.retries && !sameCounts(halved, now)
            if (canRetry) return emit(rolledBack, { kind: "prune", iteration: candidate.iteration, attempt: candidate.attempt + 1, goal: halved } as Cursor<ET, RT>)
            if (plan.gates.onFailure === "fail") {
              return yield* new GateFailed({
                iteration: candidate.iteration,
                history,
                message: `No pruning step passed the gates at iteration ${candidate.iteration} after ${candidate.attempt + 1} attempts; ` +
                  `the last accepted checkpoint is ${store.dir}/${acceptedStage}. History: ${history.join(" | ")}`
              })
            }
            const stopped: ModelState = { ...rolledBack, message: `${rolledBack.message}; no smaller step can pass, stopping at the last accepted model` }
            return emit(stopped, { kind: "finish" } as Cursor<ET, RT>)
          }
        }
      }).pipe(Effect.withSpan(`Loop.${cursor.kind}`, { attributes: { strategy } }))

    return Stream.unfold(first, step)
  }))
