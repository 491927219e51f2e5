/**
 * Supervised fine-tuning and continual pre-training as a Tuner: next-token loss on the
 * iteration's examples (completion tokens only for `sft`, every token for `cpt`, PTL's recovery
 * option A), AdamW with linear warmup and cosine decay within the tuning, clipping by global
 * norm. Its saved state is the trainer's step and data cursor; the AdamW moments go with it as
 * tensors, so a resumed tuning computes exactly what the uninterrupted one would have.
 */
import { Effect, Schema } from "effect"
import { adapterTargets } from "../model/Adapters.ts"
import { fullTuningFootprint } from "../model/Footprint.ts"
import type { Model } from "../model/Model.ts"
import type { GradientsFailed } from "../model/Gradients.ts"
import { Gradients } from "../services/Gradients.ts"
import { encodeExample } from "../tasks/Encode.ts"
import { defaultAdamW } from "./AdamW.ts"
import { warmupCosine } from "./Schedule.ts"
import { type NonFiniteLoss, type TrainerState, type TrainOptions, trainStep } from "./Trainer.ts"
import type { TuneContext, Tuner } from "./Tuner.ts"
import { openWeightsSession } from "./TunerSession.ts"
import { cursorSnapshot, freshCursorState, restoreCursorState } from "./TunerState.ts"
import { optimizerFields, Positive, PositiveInt, stepsField, withDefault } from "./TunerSettings.ts"
import { drawTrainingExamples, type NoTrainingData } from "./TuningData.ts"

/** The `tuner:` entry of a plan for SFT / continual pre-training. */
export const SftConfig = Schema.Struct({
  kind: Schema.Literals(["sft", "cpt"]).pipe(withDefault("sft")),
  ...stepsField(40),
  batchSize: PositiveInt.pipe(withDefault(32)),
  ...optimizerFields(1e-3),
  /**
   * Train low-rank adapters on these projections instead of every weight (frozen base, merged
   * into the weights when the tuning finishes): what makes tuning fit at 0.5B parameters and up.
   */
  adapter: Schema.optionalKey(Schema.Struct({
    rank: PositiveInt.pipe(withDefault(16)),
    /** The update is scaled by alpha / rank; default alpha = rank. */
    alpha: Schema.optionalKey(Positive),
    targets: Schema.NonEmptyArray(Schema.Literals(adapterTargets)).pipe(withDefault([...adapterTargets]))
  }))
})
export type SftConfig = typeof SftConfig.Type

export const trainOptions = (config: SftConfig, steps: number, padId: number): TrainOptions => ({
  schedule: warmupCosine(config.lr, steps, config.warmupFraction),
  optimizer: { ...defaultAdamW, weightDecay: config.weightDecay },
  maxGradNorm: config.maxGradNorm,
  batchSize: config.batchSize,
  accumulation: 1,
  seqLen: config.maxSeqLen,
  padId,
  promptMasked: config.kind === "sft"
})

export type SftError = GradientsFailed | NonFiniteLoss | NoTrainingData

export const sftTuner = (config: SftConfig): Tuner<SftError, Gradients> => {
  /** A session over the trainer state `initial` makes, once the data is known to be there. */
  const open = Effect.fn("Sft.open")(function*<EA>(model: Model, context: TuneContext, initial: Effect.Effect<TrainerState, EA>) {
    const examples = yield* drawTrainingExamples(context, context.steps * config.batchSize)
    const data = examples.map((e) => encodeExample(context.tokenizer, e))
    const options = trainOptions(config, context.steps, context.tokenizer.padId ?? 0)
    const shape = model.config
    return yield* openWeightsSession<TrainerState, SftError, Gradients, EA>({
      shape,
      steps: context.steps,
      stepsDone: (trainer) => trainer.optimizer.step,
      step: (trainer) =>
        trainStep(shape, trainer, data, options).pipe(Effect.map(({ state, report }) => ({
          state,
          done: { step: report.step, loss: report.loss, tokens: report.targets, metrics: { lr: report.lr, gradNorm: report.gradNorm } }
        }))),
      snapshot: (trainer) => cursorSnapshot(shape, trainer)
    }, initial)
  })

  return {
    kind: config.kind,
    footprint: (shape) => fullTuningFootprint(shape, config.batchSize, config.maxSeqLen),
    start: (model, context) => open(model, context, freshCursorState(model, context.seed)),
    resume: (model, snapshot, context) => open(model, context, restoreCursorState(config.kind, model, snapshot))
  }
}
