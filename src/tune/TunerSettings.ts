/**
 * The keys every full-weight tuner's plan entry shares — budget, optimizer, schedule, sequence
 * length — declared once, so SFT, distillation and GRPO read and document them the same way.
 */
import { Effect, Schema } from "effect"

export const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
export const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
export const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
export const withDefault = <S extends Schema.Top>(value: S["Encoded"]) => Schema.withDecodingDefaultKey<S>(Effect.succeed(value))

/** Steps per iteration: one count for every iteration, or one per planned iteration (the last repeats). */
export const TuningSteps = Schema.Union([PositiveInt, Schema.NonEmptyArray(PositiveInt)])

/**
 * A tuner's budget with its own default: steps per iteration, one count for every iteration, or a
 * list with one per planned iteration (later pruning steps cut deeper into a smaller model and
 * need more recovery); iterations beyond the list (added by halved retries) use its last entry.
 */
export const stepsField = (steps: number) => ({ steps: TuningSteps.pipe(withDefault(steps)) })

/** The optimizer, schedule and sequence keys, with a tuner's own default peak learning rate. */
export const optimizerFields = (lr: number) => ({
  /** Peak learning rate; warmup then cosine decay within each iteration. */
  lr: Positive.pipe(withDefault(lr)),
  warmupFraction: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)).pipe(withDefault(0.05)),
  weightDecay: NonNegative.pipe(withDefault(0.01)),
  maxGradNorm: Positive.pipe(withDefault(1)),
  /** Longest sequence trained on (GRPO: prompt + completion). */
  maxSeqLen: PositiveInt.pipe(withDefault(128))
})
