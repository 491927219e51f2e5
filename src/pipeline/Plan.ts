/**
 * A run's plan: which model to compress, on what data, to what size, in how many iterations,
 * with which scorer, tuner, gates and seeds. Read from YAML or JSON; every violation is
 * reported at once with its path (and its line, for YAML).
 */
import { Effect, Result, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { isMap, isSeq, LineCounter, parseDocument } from "yaml"
import { schemaProblems } from "../io/Errors.ts"
import { ScheduleKinds } from "../prune/Schedule.ts"
import { defaultScorer, scorersFor } from "../prune/Scores.ts"
import { DatasetRef } from "../services/Datasets.ts"
import { TunerConfig } from "../tune/Tuners.ts"

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
  /**
   * How each iteration recovers: one tuner, or a list run in order within every iteration (e.g.
   * SFT, then RL). Each kind's settings live with its implementation in src/tune/.
   */
  tuner: Schema.Union([TunerConfig, Schema.NonEmptyArray(TunerConfig)]).pipe(withDefault({})),
  gates: Gates.pipe(withDefault({})),
  /** Baselines to run after the loop in the same machinery, with the same total tuning budget. */
  baselines: Schema.Array(Schema.Literals(["one-shot", "prune-only"])).pipe(withDefault([])),
  seed: Schema.Int.pipe(withDefault(1)),
  backend: Schema.Literals(["auto", "tensorflow", "wasm", "cpu"]).pipe(withDefault("auto"))
})
export type Plan = typeof Plan.Type

/** The bundled base model, for plans that say `model: base`. */
export const bundledModelPath = fileURLToPath(new URL("../../models/base", import.meta.url))

/** The checkpoint folder a plan names: the bundled model, or a path relative to the plan's folder. */
export const resolveModelPath = (plan: Plan, planDir: string): string =>
  plan.model === "base" ? bundledModelPath : resolve(planDir, plan.model)

/** The plan's tuners, in the order they run within an iteration. */
export const plannedTuners = (plan: Plan): ReadonlyArray<TunerConfig> => (Array.isArray(plan.tuner) ? plan.tuner : [plan.tuner as TunerConfig])

/** The tuning steps of iteration `iteration` (1-based) for a budget of one count or one per iteration. */
export const tuningStepsAt = (steps: number | ReadonlyArray<number>, iteration: number): number =>
  typeof steps === "number" ? steps : steps[Math.min(iteration, steps.length) - 1]

/** A tuner's planned budget over the loop's iterations: what the one-shot baseline tunes with. */
export const plannedTuningSteps = (steps: number | ReadonlyArray<number>, iterations: number): number =>
  Array.from({ length: iterations }, (_, i) => tuningStepsAt(steps, i + 1)).reduce((a, b) => a + b, 0)

/** The longest sequence the plan's tuners train on: evaluation and calibration use it too. */
export const planSeqLen = (plan: Plan): number => Math.max(...plannedTuners(plan).map((t) => t.maxSeqLen))

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
