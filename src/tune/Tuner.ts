/**
 * Tuner: a recovery method — how a pruned model is tuned back within one iteration of the loop.
 * SFT / continual pre-training, distillation and GRPO are implementations; the loop runs a plan's
 * list of tuners in order and knows nothing about any optimizer.
 *
 * A tuning is a session: `start` (or `resume` from a snapshot) → `step` until `stepsDone`
 * reaches `steps` → `finish`, which hands the tuned weights to the caller. At any step boundary
 * `snapshot` gives the session's whole state — a JSON value the tuner encodes with its own Schema
 * (step, data cursor, RNG state, ...) and named float tensors (optimizer moments) — from which
 * `resume`, given the current weights, continues exactly as if never stopped.
 *
 * Ownership: `start` and `resume` consume the model they are given (a step may release its
 * tensors); the session holds its weights and state in the Scope it was started in and releases
 * them when that scope closes, except the weights `finish` handed over.
 */
import type { InferenceEngine } from "../compute/Inference.ts"
import type { Effect, Scope } from "effect"
import { Schema } from "effect"
import type { NamedTensor } from "../io/Safetensors.ts"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import type { Footprint } from "../model/Footprint.ts"
import type { Model } from "../model/Model.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Dataset } from "../services/Datasets.ts"

/** What a tuning is for: the iteration, its budget and data, and the unpruned model. */
export interface TuneContext {
  /** Loop iteration (1-based); seeds derive from it. */
  readonly iteration: number
  /** Steps this tuning takes (the plan's budget for this iteration, or a baseline's total). */
  readonly steps: number
  readonly seed: number
  readonly tokenizer: Tokenizer
  /** Training data; a tuner draws what it needs from chunk `chunk` of each (`Dataset.chunk`). */
  readonly datasets: ReadonlyArray<Dataset>
  /** The training chunk of this tuning: the iteration with fresh chunks, else 0. */
  readonly chunk: number
  /** The unpruned model, read only (the distillation teacher); a tuner never releases it. */
  readonly original: Model
  /** The device budget block-by-block tuning checks its uploads against (DeviceMemory's). */
  readonly room: DeviceRoom
  /**
   * The engine forward-only reads of a model run on (the distillation teacher): the run's
   * evaluation engine; default tfjs.
   */
  readonly inference?: InferenceEngine
}

/** What one step did. */
export interface TuneStep {
  /** Steps done after this one (1-based). */
  readonly step: number
  /** The objective the step minimised (mean over its tokens). */
  readonly loss: number
  /** Tokens the step trained on (counted targets; rollout tokens for RL). */
  readonly tokens: number
  /** The tuner's own per-step measurements (learning rate, reward, KL, ...), by name. */
  readonly metrics: Readonly<Record<string, number>>
}

/** A session's state at a step boundary, to save and resume from. */
export interface TunerSnapshot {
  /** The tuner's own state, encoded with its Schema to a JSON-safe value; opaque to everyone else. */
  readonly state: unknown
  /** Float tensors besides the weights (optimizer moments, adapters), by name. */
  readonly tensors: ReadonlyArray<NamedTensor>
}

export interface TunerSession<E = never, R = never> {
  /** This tuning's budget. */
  readonly steps: number
  /** Steps done so far (more than 0 after a resume). */
  readonly stepsDone: () => number
  /** One step. A failed step changes nothing (the session is still at the previous boundary). */
  readonly step: Effect.Effect<TuneStep, E, R>
  /** The weights now; valid until the next step. */
  readonly current: () => Model
  /** The whole state at the current step boundary. */
  readonly snapshot: Effect.Effect<TunerSnapshot>
  /** Hands the current weights to the caller, who owns (and releases) them from now on. */
  readonly finish: Effect.Effect<Model>
}

export interface Tuner<E = never, R = never> {
  /** The plan's name for it ("sft", "grpo", ...), written to the event log. */
  readonly kind: string
  /**
   * Device memory a tuning of a model of this shape takes at its peak, the weights it tunes
   * included (DeviceMemory refuses a plan that cannot fit before it starts). `host`: present
   * where the budget is host memory, which also holds ONNX Runtime's sessions (PlanFootprint.ts).
   */
  readonly footprint: (config: ModelConfig, host?: { readonly inference: InferenceEngine }) => Footprint
  /** The low-rank adapters it trains instead of every weight, if any (logged with each tuning). */
  readonly adapter?: { readonly rank: number; readonly targets: ReadonlyArray<string> }
  readonly start: (model: Model, context: TuneContext) => Effect.Effect<TunerSession<E, R>, E, R | Scope.Scope>
  readonly resume: (
    model: Model,
    snapshot: TunerSnapshot,
    context: TuneContext
  ) => Effect.Effect<TunerSession<E, R>, E | InvalidTunerState, R | Scope.Scope>
}

/** A saved tuner state that does not decode, or does not fit the model it is resumed on. */
export class InvalidTunerState extends Schema.TaggedError<InvalidTunerState>()("InvalidTunerState", {
  kind: Schema.String,
  message: Schema.String
}) {}
