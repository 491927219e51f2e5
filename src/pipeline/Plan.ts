/**
 * A run's plan: which model to compress, on what data, to what size, in how many iterations,
 * with which scorer, tuner, gates and seeds. Read from YAML or JSON; every violation is
 * reported at once with its path (and its line, for YAML).
 */
import { Effect, Result, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { isMap, isSeq, LineCounter, parseDocument } from "yaml"
import { schemaProblems } from "../io/Errors.ts"
import { ScheduleKinds } from "../prune/Schedule.ts"
import { defaultScorer, scorersFor } from "../prune/Scores.ts"
import { DatasetRef } from "../services/Datasets.ts"

const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const Fraction = Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1))
const withDefault = <S extends Schema.Top>(value: S["Encoded"]) => Schema.withDecodingDefaultKey<S>(Effect.succeed(value))

export const Units = ["neurons", "heads", "layers"] as const
export type Unit = (typeof Units)[number]
export const Unit = Schema.Literals(Units)


/** How small the model must become: a fraction of its non-embedding parameters, or units per layer. */
export const Target = Schema.Union([
  Schema.Struct({ parameters: Fraction }),
  Schema.Struct({
    perLayer: Schema.Struct({
      neurons: Schema.optionalKey(PositiveInt),
      heads: Schema.optionalKey(PositiveInt),
      layers: Schema.optionalKey(PositiveInt)
    })
  })
])
export type Target = typeof Target.Type

/**
 * How each iteration recovers. Continual pre-training counts every token; SFT only completion
 * tokens. The union is open: reinforcement learning and distillation add members later.
 */
export const Tuner = Schema.Struct({
  kind: Schema.Literals(["cpt", "sft"]).pipe(withDefault("sft")),
  /**
   * Optimizer steps per iteration: one count for every iteration, or a list with one per
   * planned iteration (later pruning steps cut deeper into a smaller model and need more
   * recovery); iterations beyond the list (added by halved retries) use its last entry.
   */
  steps: Schema.Union([PositiveInt, Schema.NonEmptyArray(PositiveInt)]).pipe(withDefault(40)),
  batchSize: PositiveInt.pipe(withDefault(32)),
  /** Peak learning rate; warmup then cosine decay within each iteration. */
  lr: Positive.pipe(withDefault(1e-3)),
  warmupFraction: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)).pipe(withDefault(0.05)),
  weightDecay: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)).pipe(withDefault(0.01)),
  maxGradNorm: Positive.pipe(withDefault(1)),
  maxSeqLen: PositiveInt.pipe(withDefault(128))
})
export type Tuner = typeof Tuner.Type

export const Gates = Schema.Struct({
  /** Every graded evaluation dataset keeps at least this fraction of the original model's accuracy. */
  accuracyRetained: Schema.optionalKey(Fraction),
  /** Perplexity datasets: log-perplexity may rise by at most this much over the original. */
  lossIncrease: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  /** A failed gate rolls back and retries the iteration with half the pruning step, this many times. */
  retries: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).pipe(withDefault(2)),
  /** After the retries: stop the run (keeping the last accepted model), or fail with GateFailed. */
  onFailure: Schema.Literals(["stop", "fail"]).pipe(withDefault("stop"))
})
export type Gates = typeof Gates.Type

export const Plan = Schema.Struct({
  /** A Hugging Face checkpoint folder; "base" is the bundled model. */
  model: Schema.NonEmptyString,
  target: Target,
  /** What to prune each iteration; a list prunes each in turn within an iteration. */
  unit: Schema.Union([Unit, Schema.NonEmptyArray(Unit)]).pipe(withDefault("neurons")),
  iterations: PositiveInt.pipe(withDefault(8)),
  schedule: Schema.Literals(ScheduleKinds).pipe(withDefault("constant")),
  /** Importance scorer; by default the unit's own (see `simmer prune --help`). */
  scorer: Schema.optionalKey(Schema.String),
  /**
   * Neurons and heads: the same count kept in every layer (a standard Hugging Face config), or
   * one ranking across layers (layers of different widths; see the README, "Layers of different widths").
   */
  allocation: Schema.Literals(["uniform", "global"]).pipe(withDefault("uniform")),
  data: Schema.Struct({
    /** Datasets the tuner trains on (mixed). */
    tune: Schema.NonEmptyArray(DatasetRef),
    /** Task data for scoring importance (calibration split). */
    calibration: Schema.NonEmptyArray(DatasetRef),
    /** General text: the "keep" side of contrastive scoring. */
    general: DatasetRef.pipe(withDefault({ task: "general" })),
    /** Datasets the gates and the report evaluate (test split). */
    evaluate: Schema.NonEmptyArray(DatasetRef),
    /** Each iteration tunes on a fresh chunk of training data (the paper's default). */
    freshChunks: Schema.Boolean.pipe(withDefault(true)),
    calibrationExamples: PositiveInt.pipe(withDefault(128)),
    evaluationExamples: PositiveInt.pipe(withDefault(200))
  }),
  tuner: Tuner.pipe(withDefault({})),
  gates: Gates.pipe(withDefault({})),
  /** Baselines to run after the loop in the same machinery, with the same total tuning budget. */
  baselines: Schema.Array(Schema.Literals(["one-shot", "prune-only"])).pipe(withDefault([])),
  seed: Schema.Int.pipe(withDefault(1)),
  backend: Schema.Literals(["auto", "tensorflow", "wasm", "cpu"]).pipe(withDefault("auto"))
})
export type Plan = typeof Plan.Type

/** The tuning steps of iteration `iteration` (1-based) of the loop. */
export const tuningStepsAt = (tuner: Tuner, iteration: number): number =>
  typeof tuner.steps === "number" ? tuner.steps : tuner.steps[Math.min(iteration, tuner.steps.length) - 1]

/** The loop's planned tuning budget in steps: what the one-shot baseline tunes with. */
export const plannedTuningSteps = (plan: Plan): number =>
  Array.from({ length: plan.iterations }, (_, i) => tuningStepsAt(plan.tuner, i + 1)).reduce((a, b) => a + b, 0)

export const planUnitsOf = (plan: Plan): ReadonlyArray<Unit> => (typeof plan.unit === "string" ? [plan.unit] : plan.unit)

/** The scorer used for `unit`: the plan's, else the unit's default. */
export const scorerFor = (plan: Plan, unit: Unit): string => plan.scorer ?? defaultScorer[unit]

export class InvalidPlan extends Schema.TaggedError<InvalidPlan>()("InvalidPlan", {
  path: Schema.String,
  problems: Schema.Array(Schema.String),
  message: Schema.String
}) {}

const decodePlan = Schema.decodeUnknownResult(Plan)

/** The line (1-based) of the YAML node at a problem's path, when it can be found. */
const lineOf = (doc: ReturnType<typeof parseDocument>, counter: LineCounter, path: ReadonlyArray<PropertyKey>) => {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth) as Array<string | number>, true)
    const range = (node as { range?: [number, number, number] } | null)?.range
    if (range !== undefined) return counter.linePos(range[0]).line
  }
  return undefined
}

/**
 * Parses and validates plan text (YAML, of which JSON is a subset). All problems at once, each
 * as "line N: path: message".
 */
export const parsePlan = (text: string, path: string): Effect.Effect<Plan, InvalidPlan> => {
  const counter = new LineCounter()
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true })
  const fail = (problems: Array<string>) =>
    Effect.fail(new InvalidPlan({
      path,
      problems,
      message: `${path} is not a valid plan (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  ` +
        problems.join("\n  ")
    }))
  if (doc.errors.length > 0) {
    return fail(doc.errors.map((e) => `line ${counter.linePos(e.pos[0]).line}: ${e.message.split("\n")[0]}`))
  }
  if (!isMap(doc.contents) && !isSeq(doc.contents)) return fail(["the plan must be a mapping of keys (model:, target:, data:, ...)"])
  const decoded = decodePlan(doc.toJS(), { errors: "all" })
  if (Result.isSuccess(decoded)) {
    const plan = decoded.success
    const wrong = plan.scorer === undefined ? [] : planUnitsOf(plan).filter((unit) => !scorersFor[unit].includes(plan.scorer!))
    if (wrong.length === 0) return Effect.succeed(plan)
    const line = lineOf(doc, counter, ["scorer"])
    return fail(wrong.map((unit) =>
      `${line !== undefined ? `line ${line}: ` : ""}scorer: "${plan.scorer}" cannot score ${unit}; choose one of ${scorersFor[unit].join(", ")}`))
  }
  const issues = schemaProblems(decoded.failure)
  return fail(issues.map((problem) => {
    const keyPath = problem.includes(": ") ? problem.slice(0, problem.indexOf(": ")) : ""
    const keys = keyPath.split(/\.|\[(\d+)\]/).filter((k) => k !== undefined && k !== "").map((k) => (/^\d+$/.test(k) ? Number(k) : k))
    const line = lineOf(doc, counter, keys)
    return line !== undefined ? `line ${line}: ${problem}` : problem
  }))
}

export const readPlan = (path: string): Effect.Effect<{ plan: Plan; text: string }, InvalidPlan> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new InvalidPlan({ path, problems: [], message: `Cannot read the plan ${path}: ${(cause as Error).message}.` })
  }).pipe(Effect.flatMap((text) => parsePlan(text, path).pipe(Effect.map((plan) => ({ plan, text })))))
