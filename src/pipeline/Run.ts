/**
 * A whole run: evaluate the original model (iteration 0), run the loop, then each baseline of
 * the plan in the same machinery, appending every state to the run's event log. Resuming is the
 * same function on an existing run folder: finished strategies are skipped, and an unfinished
 * one continues from its last accepted checkpoint (falling back to an earlier one when that
 * one is corrupt) and, when it was interrupted mid-tuning, from the saved trainer state.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Option, Stream } from "effect"
import { loadCheckpoint } from "../io/Checkpoint.ts"
import { loadTokenizer } from "../io/Tokenizer.ts"
import { disposeParams, paramSpecs } from "../model/Params.ts"
import { Datasets } from "../services/Datasets.ts"
import { RunStore } from "../services/RunStore.ts"
import type { DataCursor } from "../tune/Batches.ts"
import type { GradientFn, TrainerState } from "../tune/Trainer.ts"
import type { EvaluationSetup } from "./Evaluation.ts"
import { evaluateModel } from "./Evaluation.ts"
import { type LoopStart, runLoop, stageName } from "./Loop.ts"
import type { Model } from "../model/Model.ts"
import { type ModelState, toEvent } from "./ModelState.ts"
import type { Plan, Unit } from "./Plan.ts"
import { calibrationData, makePruneFn } from "./Pruning.ts"
import type { RunEvent, Strategy } from "../io/RunEvent.ts"

export interface RunOptions<EG, RG> {
  readonly plan: Plan
  /** The checkpoint folder the plan's `model` names, resolved. */
  readonly modelPath: string
  readonly gradients: GradientFn<EG, RG>
  /** Every state as it happens, with the event written for it. */
  readonly onState?: (state: ModelState, event: RunEvent) => void
  readonly onTuneStep?: (step: number, steps: number, loss: number) => void
  readonly evaluationBatchSize?: number
}

export const executeRun = <EG, RG>(options: RunOptions<EG, RG>) =>
  Effect.gen(function*() {
    const store = yield* RunStore
    const datasets = yield* Datasets
    const { plan } = options
    const source = yield* loadCheckpoint(options.modelPath)
    const tokenizer = yield* loadTokenizer(options.modelPath)
    const open = (refs: ReadonlyArray<Plan["data"]["general"]>) => Effect.forEach(refs, (ref) => datasets.open(ref))
    const evaluation: EvaluationSetup = {
      tokenizer,
      datasets: yield* open(plan.data.evaluate),
      examples: plan.data.evaluationExamples,
      batchSize: options.evaluationBatchSize ?? 64,
      maxSeqLen: plan.tuner.maxSeqLen
    }
    // Stages are saved in float32 whatever the source dtype, so a resumed run continues from
    // exactly the weights it had.
    const stageTemplate = {
      hfConfig: source.hfConfig,
      dtype: "F32" as const,
      generationConfig: source.generationConfig,
      extraFiles: source.files.tokenizer
    }
    const original: Model = { config: source.config, params: source.params }
    const emit = (state: ModelState) =>
      store.appendEvent(toEvent(state)).pipe(Effect.tap((event) => Effect.sync(() => options.onState?.(state, event))))

    let events = yield* store.events
    if (!events.some((e) => e.strategy === "ptl" && e.iteration === 0 && e.phase === "accepted")) {
      const loaded: ModelState = { strategy: "ptl", iteration: 0, attempt: 0, phase: "loaded", model: original, timings: {} }
      yield* emit(loaded)
      const started = performance.now()
      const metrics = yield* evaluateModel(evaluation, loaded)
      const evaluated: ModelState = { ...loaded, phase: "evaluated", metrics, timings: { evaluate: (performance.now() - started) / 1000 } }
      yield* emit(evaluated)
      const stage = yield* store.saveStage(stageName("ptl", 0), { ...stageTemplate, ...original })
      yield* store.markAccepted({ stage, iteration: 0, strategy: "ptl" })
      yield* emit({ ...evaluated, phase: "accepted", checkpoint: stage })
      events = yield* store.events
    }
    const originalMetrics = events.find((e) => e.strategy === "ptl" && e.iteration === 0 && e.phase === "evaluated")?.metrics ?? {}
    const prune = makePruneFn(plan, calibrationData(plan, tokenizer, yield* open(plan.data.calibration), yield* datasets.open(plan.data.general)))
    const tuning = {
      tuner: plan.tuner,
      tokenizer,
      datasets: yield* open(plan.data.tune),
      freshChunks: plan.data.freshChunks,
      seed: plan.seed,
      gradients: options.gradients
    }

    /** Where `strategy` starts or continues: its last accepted checkpoint that verifies, and a saved tuning. */
    const startOf = (strategy: Strategy) =>
      Effect.gen(function*() {
        const pointer = yield* store.accepted
        let start: LoopStart = { accepted: original, acceptedStage: stageName("ptl", 0), iteration: 0 }
        if (Option.isSome(pointer) && pointer.value.strategy === strategy && pointer.value.iteration > 0) {
          const candidates = events
            .filter((e) => e.strategy === strategy && e.phase === "accepted" && e.checkpoint !== undefined)
            .sort((a, b) => b.seq - a.seq)
          for (const event of candidates) {
            const loaded = yield* Effect.result(store.loadStage(event.checkpoint!))
            if (loaded._tag === "Success") {
              start = { accepted: loaded.success, acceptedStage: event.checkpoint!, iteration: event.iteration, acceptedAttempt: event.attempt }
              break
            }
            yield* Effect.logWarning(`${loaded.failure.message} Falling back to the previous accepted checkpoint.`)
            yield* store.clearResume // a saved tuning continued from the corrupt stage; it cannot be used
          }
        }
        const saved = yield* store.loadResume
        if (Option.isNone(saved)) return start
        const info = saved.value.info as { strategy: string; iteration: number; attempt: number; goal: Array<[Unit, Array<number>]>; step: number; cursor: DataCursor }
        if (info.strategy !== strategy || info.iteration !== start.iteration + 1) {
          disposeParams(saved.value.config, saved.value.params)
          return start
        }
        const moments = (prefix: string) =>
          paramSpecs(saved.value.config).map((spec) => {
            const t = saved.value.tensors.get(`${prefix}.${spec.name}`)!
            return tf.tensor(t.data, [...t.shape])
          })
        const trainer: TrainerState = {
          params: saved.value.params,
          optimizer: { step: info.step, m: moments("m"), v: moments("v") },
          cursor: info.cursor
        }
        yield* Effect.logInfo(`resuming ${strategy} iteration ${info.iteration} at tuning step ${info.step}`)
        return { ...start, resume: { iteration: info.iteration, attempt: info.attempt, goal: info.goal, trainer, config: saved.value.config } }
      })

    const strategies: Array<Strategy> = ["ptl", ...plan.baselines]
    for (const strategy of strategies) {
      if (events.some((e) => e.strategy === strategy && e.phase === "finished")) continue
      const start = yield* startOf(strategy)
      let last: ModelState | undefined
      yield* runLoop({
        plan,
        strategy,
        stageTemplate,
        originalMetrics,
        original,
        evaluate: (state) => evaluateModel(evaluation, state),
        tuning,
        prune,
        ...(options.onTuneStep !== undefined ? { onTuneStep: options.onTuneStep } : {})
      }, start).pipe(Stream.runForEach((state) => {
        last = state
        return emit(state)
      }))
      const finalEvent = [...(yield* store.events)].reverse().find((e) => e.strategy === strategy && e.phase === "accepted")
      const finalModel = last?.model ?? start.accepted
      yield* emit({
        strategy,
        iteration: finalEvent?.iteration ?? 0,
        attempt: 0,
        phase: "finished",
        model: finalModel,
        timings: {},
        ...(finalEvent?.metrics !== undefined ? { metrics: finalEvent.metrics } : {}),
        ...(finalEvent?.checkpoint !== undefined ? { checkpoint: finalEvent.checkpoint } : {})
      })
      if (finalModel !== original) disposeParams(finalModel.config, finalModel.params)
      events = yield* store.events
    }
    disposeParams(original.config, original.params)
    return yield* store.events
  })
