/**
 * Distillation as a Tuner — Minitron's recovery: the pruned student learns the full next-token
 * distributions of a teacher, by default the unpruned original (or a checkpoint the plan names),
 * on the iteration's tuning text: completion tokens of prompt/completion data, every token of
 * plain text. Optionally mixed with the plain SFT loss (`alpha`). See DistillLoss.ts. The
 * teacher runs on the run's inference engine (Teacher.ts).
 *
 * Its saved state is the step and data cursor; the AdamW moments go with it as tensors, so a
 * resumed tuning computes exactly what the uninterrupted one would have.
 */
import { Effect, Schema } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import type { LoadCheckpointError } from "../io/Checkpoint.ts"
import { disposeCheckpoint, loadCheckpoint } from "../io/CheckpointReader.ts"
import { footprint, forwardBytes, gradientBytes, weightBytes } from "../model/Footprint.ts"
import type { Model } from "../model/Model.ts"
import { ortSessionBytes } from "../onnx/GraphSession.ts"
import { encodeExample } from "../tasks/Encode.ts"
import { defaultAdamW } from "./AdamW.ts"
import { type DistillSettings, type DistillState, distillStep } from "./DistillStep.ts"
import { warmupCosine } from "./Schedule.ts"
import { openTeacher } from "./Teacher.ts"
import type { NonFiniteLoss } from "./Trainer.ts"
import type { TuneContext, Tuner } from "./Tuner.ts"
import { openWeightsSession } from "./TunerSession.ts"
import { cursorSnapshot, freshCursorState, restoreCursorState } from "./TunerState.ts"
import { optimizerFields, Positive, PositiveInt, stepsField, withDefault } from "./TunerSettings.ts"
import { drawTrainingExamples, type NoTrainingData } from "./TuningData.ts"

/** The `tuner:` entry of a plan for distillation. */
export const DistillConfig = Schema.Struct({
  kind: Schema.Literal("distill"),
  ...stepsField(40),
  batchSize: PositiveInt.pipe(withDefault(32)),
  ...optimizerFields(1e-3),
  /** Softmax temperature of teacher and student (the loss is scaled by T²). */
  temperature: Positive.pipe(withDefault(1)),
  /** Weight of the plain next-token (SFT) loss mixed in; 0 is pure distillation. */
  alpha: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1)).pipe(withDefault(0)),
  /** A checkpoint folder to learn from instead of the unpruned original (same tokenizer). */
  teacher: Schema.optionalKey(Schema.NonEmptyString)
})
export type DistillConfig = typeof DistillConfig.Type

/** The teacher's vocabulary differs from the student's: their distributions cannot be compared. */
export class TeacherMismatch extends Schema.TaggedError<TeacherMismatch>()("TeacherMismatch", {
  path: Schema.String,
  message: Schema.String
}) {}

export type DistillError = NonFiniteLoss | NoTrainingData | TeacherMismatch | LoadCheckpointError

export const distillSettings = (config: DistillConfig, steps: number, padId: number): DistillSettings => ({
  temperature: config.temperature,
  alpha: config.alpha,
  batchSize: config.batchSize,
  seqLen: config.maxSeqLen,
  padId,
  // Targets from the first completion token: for plain text (no prompt) that is every token.
  promptMasked: true,
  update: {
    schedule: warmupCosine(config.lr, steps, config.warmupFraction),
    optimizer: { ...defaultAdamW, weightDecay: config.weightDecay },
    maxGradNorm: config.maxGradNorm
  }
})

/**
 * Device memory at the peak of a distillation step: the student's weights and moments, a
 * teacher loaded from its own checkpoint (the original is counted by the run), its ONNX Runtime
 * session where the teacher runs there and the budget holds it (`host`), and on top the
 * student's gradient pass with the distributions beside it (the teacher's log-probs and their
 * exponent, the student's log-probs at T and at 1, the one-hot targets, a gradient: six
 * [tokens, vocabulary] tensors, measured), or the teacher's forward pass, or the update's copies.
 */
export const distillFootprint = (config: DistillConfig) => (shape: Model["config"], host?: { readonly inference: InferenceEngine }) => {
  const w = weightBytes(shape)
  const teacherLogProbs = 6 * 4 * config.batchSize * config.maxSeqLen * shape.vocabSize
  return footprint({
    weights: w,
    "optimizer moments": 2 * w,
    ...(config.teacher !== undefined ? { "teacher model": w } : {}),
    ...(host?.inference === "ort" ? { "teacher's ONNX Runtime session": ortSessionBytes(shape) } : {}),
    "teacher log-probs and gradients": teacherLogProbs + Math.max(
      gradientBytes(shape, config.batchSize, config.maxSeqLen),
      forwardBytes(shape, config.batchSize, config.maxSeqLen),
      3 * w
    )
  }, "Lower tuner.batchSize or tuner.maxSeqLen (the student's activations and the teacher's distributions grow with both)")
}

export const distillTuner = (config: DistillConfig): Tuner<DistillError> => {
  /** A session over the state `initial` makes, once the teacher and the data are there. */
  const open = Effect.fn("Distill.open")(function*<EA>(model: Model, context: TuneContext, initial: Effect.Effect<DistillState, EA>) {
    const shape = model.config
    const teacher: Model = config.teacher === undefined ? context.original : yield* Effect.acquireRelease(
      loadCheckpoint(config.teacher),
      (loaded) => Effect.sync(() => disposeCheckpoint(loaded))
    )
    if (teacher.config.vocabSize !== shape.vocabSize) {
      return yield* new TeacherMismatch({
        path: config.teacher ?? "the original model",
        message: `The distillation teacher ${config.teacher ?? "(the original model)"} has a vocabulary of ${teacher.config.vocabSize} ` +
          `tokens and the student ${shape.vocabSize}: a teacher must share the student's tokenizer.`
      })
    }
    const onEngine = yield* openTeacher(teacher, context.inference ?? "tfjs")
    const examples = yield* drawTrainingExamples(context, context.steps * config.batchSize)
    const data = examples.map((e) => encodeExample(context.tokenizer, e))
    const settings = distillSettings(config, context.steps, context.tokenizer.padId ?? 0)
    return yield* openWeightsSession<DistillState, DistillError, never, EA>({
      shape,
      steps: context.steps,
      stepsDone: (state) => state.optimizer.step,
      step: (state) =>
        distillStep(shape, state, data, onEngine, settings).pipe(Effect.map(({ state: next, report }) => ({
          state: next,
          done: { step: next.optimizer.step, loss: report.loss, tokens: report.tokens, metrics: report.metrics }
        }))),
      snapshot: (state) => cursorSnapshot(shape, state)
    }, initial)
  })

  return {
    kind: "distill",
    footprint: distillFootprint(config),
    start: (model, context) => open(model, context, freshCursorState(model, context.seed)),
    resume: (model, snapshot, context) => open(model, context, restoreCursorState("distill", model, snapshot))
  }
}
