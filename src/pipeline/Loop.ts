/**
 * The Prune-Tune Loop as a Stream of model states.
 *
 * One iteration: prune the last accepted model a step towards the target (score, then
 * surgery) → tune it on the iteration's data → evaluate → gate. A passed gate checkpoints the
 * model and accepts it; a failed gate rolls back to the last accepted model and retries the
 * iteration with half the step, `gates.retries` times, then stops (or fails with GateFailed).
 * The run ends when the target is reached or no step can pass.
 *
 * Baselines run in the same machinery: `one-shot` prunes to the target in one iteration and
 * tunes with the whole budget of the loop; `prune-only` prunes to the target and does not tune.
 *
 * Every stream element is produced by one stage, so consumers (terminal view, event log,
 * report) see the run as it happens. Superseded models are disposed by the loop; a state's
 * tensors are valid only until the next element is pulled.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Schema, Stream } from "effect"
import { disposeParams, paramSpecs } from "../model/Params.ts"
import { disposeAdamW } from "../tune/AdamW.ts"
import type { TrainerState } from "../tune/Trainer.ts"
import { RunStore, type StageContent } from "../services/RunStore.ts"
import { failedGates } from "./Gates.ts"
import type { Model } from "../model/Model.ts"
import type { ModelState, Stage } from "./ModelState.ts"
import { type Plan, plannedTuningSteps, planUnitsOf, tuningStepsAt, type Unit } from "./Plan.ts"
import type { DatasetScore, Strategy } from "../io/RunEvent.ts"
import { unitCounts } from "../prune/Select.ts"
import { halfStep, scheduledCounts } from "../prune/Schedule.ts"
import { finalCounts } from "./Targets.ts"
import { tune, type TuningSetup } from "./Tuning.ts"

export class GateFailed extends Schema.TaggedError<GateFailed>()("GateFailed", {
  iteration: Schema.Int,
  history: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** Prunes a model to the given units per layer of one kind; the input model stays valid. */
export type PruneFn<E, R> = (model: Model, unit: Unit, keep: ReadonlyArray<number>, iteration: number) => Effect.Effect<Model, E, R>

export interface LoopSetup<EP, RP, EG, RG, EE = never, RE = never, ES = never, RS = never> {
  readonly plan: Plan
  readonly strategy: Strategy
  /** How checkpoints are written: the original folder's config and files. */
  readonly stageTemplate: Omit<StageContent, "config" | "params">
  /** The original model's evaluation (iteration 0), which the gates compare against. */
  readonly originalMetrics: Readonly<Record<string, DatasetScore>>
  /** Original shape: the schedule runs from here to the target. */
  readonly original: Model
  /** The metrics of a state (the evaluate stage; see Evaluation.evaluateModel). */
  readonly evaluate: (state: ModelState) => Effect.Effect<Record<string, DatasetScore>, EE, RE>
  readonly tuning: TuningSetup<EG, RG>
  readonly prune: PruneFn<EP, RP>
  /** A user stage run on every tuned model before it is evaluated (e.g. quantization). */
  readonly afterTune?: Stage<ES, RS>
  readonly onTuneStep?: (step: number, steps: number, loss: number) => void
}

/** Where a (possibly resumed) loop starts: the accepted model, its iteration, and a tuning in progress. */
export interface LoopStart {
  readonly accepted: Model
  readonly acceptedStage: string
  readonly iteration: number
  /** The attempt on which the accepted model passed (0: its full step); the next step starts smaller after a halved pass. */
  readonly acceptedAttempt?: number
  /** A tuning interrupted mid-way: the iteration, attempt, its goal and the trainer state to continue. */
  readonly resume?: {
    readonly iteration: number
    readonly attempt: number
    readonly goal: ReadonlyArray<readonly [Unit, ReadonlyArray<number>]>
    readonly trainer: TrainerState
    readonly config: Model["config"]
  }
}

type Goal = Map<Unit, Array<number>>

type Cursor =
  | { readonly kind: "prune"; readonly iteration: number; readonly attempt: number; readonly goal: Goal }
  | { readonly kind: "tune"; readonly candidate: ModelState; readonly goal: Goal; readonly trainer?: TrainerState }
  | { readonly kind: "evaluate"; readonly candidate: ModelState; readonly goal: Goal }
  | { readonly kind: "gate"; readonly candidate: ModelState; readonly goal: Goal }
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

/** Units removed in all layers going from `from` to `to`. */
const unitsRemoved = (from: Goal, to: Goal) =>
  [...from.entries()].reduce((sum, [unit, counts]) => sum + counts.reduce((s, c, l) => s + c - to.get(unit)![l], 0), 0)

const describeGoal = (goal: Goal) =>
  [...goal.entries()].map(([unit, counts]) => `${unit} ${[...new Set(counts)].join("/")}`).join(", ")

export const stageName = (strategy: Strategy, iteration: number) => `${strategy}-${String(iteration).padStart(3, "0")}`

/** Serialisable form of an interrupted tuning, for RunStore.saveResume. */
const resumeInfo = (strategy: Strategy, candidate: ModelState, goal: Goal, trainer: TrainerState) => ({
  strategy,
  iteration: candidate.iteration,
  attempt: candidate.attempt,
  goal: [...goal.entries()],
  step: trainer.optimizer.step,
  cursor: trainer.cursor
})

export const runLoop = <EP, RP, EG, RG, EE = never, RE = never, ES = never, RS = never>(
  setup: LoopSetup<EP, RP, EG, RG, EE, RE, ES, RS>,
  start: LoopStart
) =>
  Stream.unwrap(Effect.gen(function*() {
    const store = yield* RunStore
    const { plan, strategy } = setup
    const units = planUnitsOf(plan)
    const final = goalView(plan.allocation, finalCounts(setup.original.config, plan))
    const initial = countsOf(setup.original, units, plan.allocation)
    const oneShot = strategy !== "ptl"
    const iterations = oneShot ? 1 : plan.iterations
    const tuningSteps = (iteration: number) =>
      strategy === "prune-only" ? 0 : oneShot ? plannedTuningSteps(plan) : tuningStepsAt(plan.tuner, iteration)
    // The loop may need extra iterations when rolled-back steps were halved; this bounds the run.
    const maxIterations = oneShot ? 1 : 2 * plan.iterations
    let accepted = start.accepted
    let acceptedStage = start.acceptedStage
    let acceptedAttempt = start.acceptedAttempt ?? 0
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

    const dispose = (model: Model) => disposeParams(model.config, model.params)

    const first: Cursor = start.resume !== undefined
      ? {
        kind: "tune",
        goal: new Map(start.resume.goal.map(([u, c]) => [u, [...c]])),
        trainer: start.resume.trainer,
        candidate: stateOf({ config: start.resume.config, params: start.resume.trainer.params }, start.resume.iteration, start.resume.attempt, "pruned")
      }
      : atTarget() || start.iteration >= maxIterations
      ? { kind: "done" }
      : { kind: "prune", iteration: start.iteration + 1, attempt: 0, goal: goalFor(start.iteration + 1) }

    const step = (cursor: Cursor) =>
      Effect.gen(function*() {
        switch (cursor.kind) {
          case "done":
            return undefined as readonly [ModelState, Cursor] | undefined
          case "prune": {
            const started = performance.now()
            let model: Model = accepted
            for (const unit of units) {
              const goal = cursor.goal.get(unit)!
              if (countsOf(model, [unit], plan.allocation).get(unit)!.every((c, l) => c === goal[l])) continue
              const pruned = yield* setup.prune(model, unit, goal, cursor.iteration)
              if (model !== accepted) dispose(model)
              model = pruned
            }
            const seconds = (performance.now() - started) / 1000
            const candidate = stateOf(model, cursor.iteration, cursor.attempt, "pruned", {
              timings: { prune: seconds },
              pruned: { unit: units[0], removed: unitsRemoved(countsOf(accepted, units, plan.allocation), cursor.goal), detail: describeGoal(cursor.goal) }
            })
            const next: Cursor = tuningSteps(cursor.iteration) > 0
              ? { kind: "tune", candidate, goal: cursor.goal }
              : { kind: "evaluate", candidate, goal: cursor.goal }
            return [candidate, next] as const
          }
          case "tune": {
            const steps = tuningSteps(cursor.candidate.iteration)
            const { state: tuned, optimizer } = yield* tune(setup.tuning, cursor.candidate, {
              steps,
              ...(cursor.trainer !== undefined ? { resume: cursor.trainer } : {}),
              onStep: (report) => setup.onTuneStep?.(report.step, steps, report.loss),
              onInterrupt: (trainer) =>
                store.saveResume({
                  info: resumeInfo(strategy, cursor.candidate, cursor.goal, trainer),
                  model: { ...setup.stageTemplate, config: cursor.candidate.model.config, params: trainer.params },
                  tensors: paramSpecs(cursor.candidate.model.config).flatMap((spec, i) => [
                    { name: `m.${spec.name}`, shape: trainer.optimizer.m[i].shape, data: trainer.optimizer.m[i].dataSync() as Float32Array },
                    { name: `v.${spec.name}`, shape: trainer.optimizer.v[i].shape, data: trainer.optimizer.v[i].dataSync() as Float32Array }
                  ])
                }).pipe(
                  Effect.tap((path) => Effect.logWarning(`interrupted at step ${trainer.optimizer.step} of ${steps}; saved the state to ${store.dir}/${path}: run \`simmer resume ${store.dir}\` to continue`))
                )
            })
            disposeAdamW(optimizer)
            const finished = setup.afterTune === undefined ? tuned : yield* setup.afterTune(tuned)
            const next: Cursor = { kind: "evaluate", candidate: finished, goal: cursor.goal }
            return [finished, next] as const
          }
          case "evaluate": {
            const started = performance.now()
            const metrics = yield* setup.evaluate(cursor.candidate)
            const evaluated: ModelState = {
              ...cursor.candidate,
              phase: "evaluated",
              metrics,
              timings: { ...cursor.candidate.timings, evaluate: (performance.now() - started) / 1000 }
            }
            const next: Cursor = { kind: "gate", candidate: evaluated, goal: cursor.goal }
            return [evaluated, next] as const
          }
          case "gate": {
            const candidate = cursor.candidate
            const failures = oneShot ? [] : failedGates(plan.gates, candidate.metrics ?? {}, setup.originalMetrics)
            if (failures.length === 0) {
              const started = performance.now()
              const stage = yield* store.saveStage(stageName(strategy, candidate.iteration), { ...setup.stageTemplate, ...candidate.model })
              yield* store.markAccepted({ stage, iteration: candidate.iteration, strategy })
              yield* store.clearResume
              // The original stays alive for the baselines that start from it; any other accepted model is superseded.
              if (accepted !== setup.original) dispose(accepted)
              accepted = candidate.model
              acceptedStage = stage
              acceptedAttempt = candidate.attempt
              const done = atTarget() || candidate.iteration >= maxIterations
              const acceptedState: ModelState = {
                ...candidate,
                phase: "accepted",
                checkpoint: stage,
                timings: { ...candidate.timings, checkpoint: (performance.now() - started) / 1000 }
              }
              const next: Cursor = done
                ? { kind: "done" }
                : { kind: "prune", iteration: candidate.iteration + 1, attempt: 0, goal: goalFor(candidate.iteration + 1) }
              return [acceptedState, next] as const
            }
            const reason = `iteration ${candidate.iteration} attempt ${candidate.attempt} (${describeGoal(cursor.goal)}): ${failures.join("; ")}`
            history.push(reason)
            const rolledBack: ModelState = { ...candidate, phase: "rolled-back", message: failures.join("; ") }
            dispose(candidate.model)
            yield* store.clearResume
            const now = countsOf(accepted, units, plan.allocation)
            const halved: Goal = new Map(units.map((u) => [u, halfStep(now.get(u)!, cursor.goal.get(u)!)]))
            const canRetry = candidate.attempt < plan.gates.retries && !sameCounts(halved, now)
            if (canRetry) {
              const retry: Cursor = { kind: "prune", iteration: candidate.iteration, attempt: candidate.attempt + 1, goal: halved }
              return [{ ...rolledBack, model: accepted }, retry] as const
            }
            if (plan.gates.onFailure === "fail") {
              return yield* new GateFailed({
                iteration: candidate.iteration,
                history,
                message: `No pruning step passed the gates at iteration ${candidate.iteration} after ${candidate.attempt + 1} attempts; ` +
                  `the last accepted checkpoint is ${store.dir}/${acceptedStage}. History: ${history.join(" | ")}`
              })
            }
            const stopped: ModelState = {
              ...rolledBack,
              model: accepted,
              message: `${rolledBack.message}; no smaller step can pass, stopping at the last accepted model`
            }
            return [stopped, { kind: "done" } as Cursor] as const
          }
        }
      })

    return Stream.unfold(first, step)
  }))

/** The last accepted model of a finished loop stream is the caller's to dispose; helper for tests and CLI. */
export const disposeModel = (model: Model) => tf.dispose(paramSpecs(model.config).map((s) => s.get(model.params)))
