/**
 * The tune stage: continual pre-training or SFT of the pruned model on this iteration's data
 * chunk (a fresh one each iteration by default), with the plan's budget. It reports every
 * step, and when interrupted (SIGTERM / SIGINT) it hands the trainer state of the last
 * finished step to `onInterrupt` so the run can be resumed from exactly there.
 */
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { Dataset } from "../services/Datasets.ts"
import { encodeExample } from "../tasks/Encode.ts"
import type { Example } from "../tasks/Task.ts"
import { defaultAdamW } from "../tune/AdamW.ts"
import { warmupCosine } from "../tune/Schedule.ts"
import { type GradientFn, initTrainer, type StepReport, type TrainerState, type TrainOptions, trainStep } from "../tune/Trainer.ts"
import type { ModelState } from "./ModelState.ts"
import type { Tuner } from "./Plan.ts"

export interface TuningSetup<E, R> {
  readonly tuner: Tuner
  readonly tokenizer: Tokenizer
  readonly datasets: ReadonlyArray<Dataset>
  /** Each iteration trains on its own chunk of the training split; otherwise every iteration reuses chunk 0. */
  readonly freshChunks: boolean
  readonly seed: number
  readonly gradients: GradientFn<E, R>
}

/** The examples iteration `iteration` tunes on: one pass worth of the budget, shared equally by the datasets. */
export const tuningExamples = (setup: Pick<TuningSetup<never, never>, "tuner" | "datasets" | "freshChunks">, iteration: number, steps: number): Array<Example> => {
  const total = steps * setup.tuner.batchSize
  const chunk = setup.freshChunks ? iteration : 0
  return setup.datasets.flatMap((dataset, i) => {
    const share = Math.floor(total / setup.datasets.length) + (i < total % setup.datasets.length ? 1 : 0)
    return [...dataset.chunk(chunk, share)]
  })
}

export const trainOptions = (tuner: Tuner, steps: number, padId: number): TrainOptions => ({
  schedule: warmupCosine(tuner.lr, steps, tuner.warmupFraction),
  optimizer: { ...defaultAdamW, weightDecay: tuner.weightDecay },
  maxGradNorm: tuner.maxGradNorm,
  batchSize: tuner.batchSize,
  accumulation: 1,
  seqLen: tuner.maxSeqLen,
  padId,
  promptMasked: tuner.kind === "sft"
})

export interface TuneRequest<E2> {
  /** Optimizer steps of this tuning (the plan's per-iteration budget, or a baseline's total). */
  readonly steps: number
  /** Trainer state to continue from (a resumed run); otherwise a fresh optimizer on the state's model. */
  readonly resume?: TrainerState
  readonly onStep?: (report: StepReport, state: TrainerState) => void
  /** Called, uninterruptibly, with the last finished step's state when the tuning is interrupted. */
  readonly onInterrupt: (state: TrainerState) => Effect.Effect<void, E2>
}

/** Tunes the state's model (its tensors are consumed). */
export const tune = <E, R, E2>(setup: TuningSetup<E, R>, state: ModelState, request: TuneRequest<E2>) =>
  Effect.gen(function*() {
    const config = state.model.config
    const padId = setup.tokenizer.padId ?? 0
    const data = tuningExamples(setup, state.iteration, request.steps).map((e) => encodeExample(setup.tokenizer, e))
    const options = trainOptions(setup.tuner, request.steps, padId)
    let trainer = request.resume ?? initTrainer(state.model.params, config, setup.seed * 7919 + state.iteration)
    const losses: Array<number> = []
    let tokens = 0
    const started = performance.now()
    yield* Effect.gen(function*() {
      while (trainer.optimizer.step < request.steps) {
        // A step and the bookkeeping of its result are one uninterruptible unit: a signal takes
        // effect at the next step boundary, when `trainer` holds a complete, live state.
        yield* Effect.uninterruptible(
          trainStep(config, trainer, data, options, setup.gradients).pipe(Effect.tap(({ state: next, report }) =>
            Effect.sync(() => {
              trainer = next
              losses.push(report.loss)
              tokens += report.targets
              request.onStep?.(report, trainer)
            })
          ))
        )
      }
    }).pipe(Effect.onInterrupt(() => Effect.suspend(() => request.onInterrupt(trainer)).pipe(Effect.orDie)))
    const seconds = (performance.now() - started) / 1000
    const tuned: ModelState = {
      ...state,
      phase: "tuned",
      model: { config, params: trainer.params },
      tune: { steps: losses.length, tokens, losses },
      timings: { ...state.timings, tune: (state.timings.tune ?? 0) + seconds }
    }
    return { state: tuned, optimizer: trainer.optimizer }
  })
