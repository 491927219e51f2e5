/**
 * A whole run as a Stream: evaluate the original model (iteration 0), run the loop, then each
 * baseline of the plan in the same machinery. Every state is appended to the run's event log
 * before it is passed on, so the stream's consumers (terminal view, `--json`, the daemon's event
 * stream, the report written afterwards) see exactly what the log holds, tuning steps besides.
 *
 * Resuming is the same stream on an existing run folder: finished strategies are skipped, an
 * unfinished one continues from its last accepted checkpoint that verifies (falling back to an
 * earlier one when the last is corrupt) and, when an iteration was interrupted, from its saved
 * resume point. The run reserves its estimated peak memory before it loads anything, and every
 * model it holds is released when the stream ends, however it ends.
 */
import * as tf from "@tensorflow/tfjs"
import { Cause, Effect, Option, Stream } from "effect"
import { type InferenceEngine, resolveInference } from "../compute/Inference.ts"
import { loadCheckpoint } from "../io/CheckpointReader.ts"
import { CorruptRunFile } from "../io/RunFolder.ts"
import type { DatasetScore, RunEvent, Strategy } from "../io/RunEvent.ts"
import { disposeModel, type Model } from "../model/Model.ts"
import { countParams } from "../model/Params.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { RunStore } from "../services/RunStore.ts"
import { type EvaluationSetup, evaluateModel } from "./Evaluation.ts"
import { type LoopStart, runLoop, stageName } from "./Loop.ts"
import { acquireModel, borrowModel } from "./Models.ts"
import { type ModelState, type Stage, toEvent } from "./ModelState.ts"
import { type Plan, planSeqLen } from "./Plan.ts"
import { calibrationData, makePruneFn } from "./Pruning.ts"
import { decodeResumeInfo } from "./ResumePoint.ts"
import { recordFailure } from "./RunFailure.ts"
import type { LoopUpdate, RunUpdate } from "./RunUpdate.ts"
import { planTuners, readRunSetup, reserveRunMemory, type RunSetup } from "./RunSetup.ts"
import { exportLoggedStages, exportStage } from "./StageExport.ts"

export interface RunOptions<ES = never, RS = never> {
  readonly plan: Plan
  /** The checkpoint folder the plan's `model` names, resolved. */
  readonly modelPath: string
  /** Asked at every step boundary; `true` stops the run resumably (see Loop.ts). */
  readonly stopRequested?: Effect.Effect<boolean>
  /** A user stage run on every tuned model before it is evaluated. */
  readonly afterTune?: Stage<ES, RS>
  readonly evaluationBatchSize?: number
  /** The setup preflight read and checked; read here when absent. */
  readonly setup?: RunSetup
  /**
   * The engine evaluation decodes with when there is no `setup` (which holds the one its
   * footprint counted); default SIMMER_INFERENCE, else auto for the current tfjs backend (compute/Inference.ts).
   */
  readonly inference?: InferenceEngine
}

export const runUpdates = <ES = never, RS = never>(options: RunOptions<ES, RS>) =>
  // The setup (memory check to calibration data) is traced as Run.setup; the stream runs after it.
  Stream.unwrap(Effect.gen(function*() {
    const store = yield* RunStore
    const memory = yield* DeviceMemory
    // Read and checked once (preflight hands it over), or here when the run starts without one (resume, a daemon's run).
    const setup = options.setup ?? (yield* readRunSetup(
      options.plan,
      options.modelPath,
      options.inference ?? (yield* resolveInference(undefined, tf.getBackend())),
      options.evaluationBatchSize
    ))
    const { plan, modelPath, tokenizer, data, evaluationBatchSize } = setup
    const tuners = planTuners(plan)

    // Refuse a plan that cannot fit before loading a single weight; hold the room while it runs.
    yield* reserveRunMemory(setup)

    const source = yield* Effect.acquireRelease(loadCheckpoint(modelPath), (loaded) => Effect.sync(() => disposeModel(loaded)))
    const original: Model = { config: source.config, params: source.params }
    const originalSize = countParams(original.config).nonEmbedding
    const evaluation: EvaluationSetup = {
      tokenizer,
      datasets: data.evaluate,
      examples: plan.data.evaluationExamples,
      batchSize: evaluationBatchSize,
      maxSeqLen: planSeqLen(plan),
      inference: setup.inference,
      room: memory.room
    }
    // Stages are saved in float32 whatever the source dtype, so a resumed run continues from
    // exactly the weights it had.
    const stageTemplate = {
      hfConfig: source.hfConfig,
      dtype: "F32" as const,
      generationConfig: source.generationConfig,
      extraFiles: source.files.tokenizer
    }
    const prune = makePruneFn(
      plan,
      yield* calibrationData(plan, tokenizer, data.calibration, data.general),
      memory.room,
      setup.inference
    )
    const tuning = { seed: plan.seed, tokenizer, datasets: data.tune, freshChunks: plan.data.freshChunks, room: memory.room, inference: setup.inference }
    const evaluate = (state: ModelState) => evaluateModel(evaluation, state)

    /** Iteration 0, once per run: the original as loaded, evaluated, and checkpointed. */
    const preamble = Stream.unwrap(Effect.gen(function*() {
      const events = yield* store.events
      if (events.some((e) => e.strategy === "ptl" && e.iteration === 0 && e.phase === "accepted")) return Stream.empty
      const loaded: ModelState = { strategy: "ptl", iteration: 0, attempt: 0, phase: "loaded", model: original, timings: {} }
      let evaluated = loaded
      const stages: ReadonlyArray<Effect.Effect<ModelState, Effect.Error<ReturnType<typeof evaluate>> | Effect.Error<ReturnType<typeof store.saveStage>> | Effect.Error<ReturnType<typeof store.markAccepted>>>> = [
        Effect.succeed(loaded),
        Effect.gen(function*() {
          const started = performance.now()
          const metrics = yield* evaluate(loaded)
          evaluated = { ...loaded, phase: "evaluated", metrics, timings: { evaluate: (performance.now() - started) / 1000 } }
          return evaluated
        }).pipe(Effect.withSpan("Run.evaluateOriginal")),
        Effect.gen(function*() {
          const stage = yield* store.saveStage(stageName("ptl", 0), { ...stageTemplate, ...original })
          yield* store.markAccepted({ stage, iteration: 0, strategy: "ptl" })
          const accepted: ModelState = { ...evaluated, phase: "accepted", checkpoint: stage }
          return accepted
        }).pipe(Effect.withSpan("Run.acceptOriginal"))
      ]
      return Stream.fromIterable(stages).pipe(Stream.mapEffect((stage) => stage), Stream.map((state): LoopUpdate => ({ _tag: "State", state })))
    }))

    /** Where `strategy` starts or continues: its last accepted checkpoint that verifies, and a saved resume point. */
    const startOf = Effect.fn("Run.startOf")(function*(strategy: Strategy, events: ReadonlyArray<RunEvent>, originalMetrics: Readonly<Record<string, DatasetScore>>) {
      let start: LoopStart = { accepted: borrowModel(original), acceptedStage: `stages/${stageName("ptl", 0)}`, iteration: 0, acceptedMetrics: originalMetrics }
      const candidates = events
        .filter((e) => e.strategy === strategy && e.phase === "accepted" && e.iteration > 0 && e.checkpoint !== undefined)
        .sort((a, b) => b.seq - a.seq)
      for (const event of candidates) {
        const loaded = yield* Effect.result(acquireModel(store.loadStage(event.checkpoint!)))
        if (loaded._tag === "Success") {
          start = {
            accepted: loaded.success,
            acceptedStage: event.checkpoint!,
            iteration: event.iteration,
            acceptedAttempt: event.attempt,
            acceptedMetrics: event.metrics ?? {}
          }
          break
        }
        yield* Effect.logWarning(`${loaded.failure.message} Falling back to the previous accepted checkpoint.`)
        yield* store.clearResume // a saved iteration continued from the corrupt stage; it cannot be used
      }
      const saved = yield* store.loadResume
      if (Option.isNone(saved)) return start
      const model = yield* acquireModel(Effect.succeed(saved.value.model))
      const info = decodeResumeInfo(saved.value.info)
      if (info === undefined || info.tuner > tuners.length) {
        return yield* new CorruptRunFile({
          path: `${store.dir}/resume/state.json`,
          message: `${store.dir}/resume/state.json does not say where the interrupted iteration stood; remove ` +
            `${store.dir}/resume to restart that iteration from the last accepted checkpoint (${start.acceptedStage}).`
        })
      }
      if (info.strategy !== strategy || info.iteration !== start.iteration + 1) {
        yield* model.release
        return start
      }
      const where = info.tuner < tuners.length
        ? `${tuners[info.tuner].tuner.kind} tuning${info.tunerState === undefined ? "" : " (continued)"}`
        : "evaluation"
      yield* Effect.logInfo(`resuming ${strategy} iteration ${info.iteration} at its ${where}`)
      return {
        ...start,
        resume: {
          iteration: info.iteration,
          attempt: info.attempt,
          goal: info.goal,
          tuner: info.tuner,
          model,
          ...(info.tunerState !== undefined ? { snapshot: { state: info.tunerState, tensors: saved.value.tensors } } : {}),
          ...(info.record !== undefined ? { record: info.record } : {})
        }
      }
    })

    /** The strategy the run is at, for the `failed` event should it fail. */
    let current: Strategy = "ptl"
    const strategyStream = (strategy: Strategy) =>
      Stream.unwrap(Effect.gen(function*() {
        current = strategy
        const events = yield* store.events
        if (events.some((e) => e.strategy === strategy && e.phase === "finished")) return Stream.empty
        const originalMetrics = events.find((e) => e.strategy === "ptl" && e.iteration === 0 && e.phase === "evaluated")?.metrics ?? {}
        const start = yield* startOf(strategy, events, originalMetrics)
        return runLoop({
          plan,
          strategy,
          stageTemplate,
          originalMetrics,
          original,
          evaluate,
          prune,
          tuners,
          tuning,
          ...(options.afterTune !== undefined ? { afterTune: options.afterTune } : {}),
          ...(options.stopRequested !== undefined ? { stopRequested: options.stopRequested } : {})
        }, start)
      }))

    /**
     * Writes a state to the event log (and a finished strategy to result.json) before anyone sees
     * it; an accepted stage is exported as the plan asks (`export:`) once its acceptance is logged,
     * from the stage folder just saved, whichever strategy accepted it (iteration 0's original too).
     */
    const persist = Effect.fn("Run.persist")(function*(update: LoopUpdate) {
      if (update._tag === "Step") return update as RunUpdate
      const event = yield* store.appendEvent(toEvent(update.state))
      if (event.phase === "accepted" && event.checkpoint !== undefined) yield* exportStage(store.dir, event.checkpoint, plan.export)
      if (event.phase === "finished" && event.checkpoint !== undefined) {
        yield* store.recordResult(event.strategy, {
          checkpoint: event.checkpoint,
          iteration: event.iteration,
          parameters: event.parameters,
          share: event.parameters.nonEmbedding / originalSize,
          targetReached: event.targetReached ?? true,
          metrics: event.metrics ?? {},
          finishedAt: event.time
        })
      }
      return { _tag: "Event", event } as RunUpdate
    })

    /** A resumed run first exports the stages accepted before a crash cut their export short. */
    const catchUpExports = Stream.fromEffect(Effect.flatMap(store.events, (events) => exportLoggedStages(store.dir, events, plan.export))).pipe(
      Stream.drain
    )

    const strategies: ReadonlyArray<Strategy> = ["ptl", ...plan.baselines]
    return catchUpExports.pipe(
      Stream.concat(preamble),
      Stream.concat(Stream.fromIterable(strategies).pipe(Stream.flatMap(strategyStream))),
      // After an interruption nothing else starts: the run stops where it is.
      Stream.takeUntil((update) => update._tag === "State" && update.state.phase === "interrupted"),
      Stream.mapEffect(persist),
      // A failure is logged (with its error) and recorded before it ends the stream.
      Stream.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Stream.failCause(cause)
          : Stream.unwrap(Effect.map(recordFailure(current, cause, originalSize), (event) => {
            const failed: ReadonlyArray<RunUpdate> = event === undefined ? [] : [{ _tag: "Event", event }]
            return Stream.fromIterable(failed).pipe(Stream.concat(Stream.failCause(cause)))
          }))
      )
    )
  }).pipe(Effect.withSpan("Run.setup")))
