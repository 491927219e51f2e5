/**
 * A run's plan: which model to compress, on what data, to what size, in how many iterations,
 * with which scorer, tuner, gates and seeds. Read from YAML or JSON; every violation is
 * reported at once, each with its line and path, in words a person can act on: unknown keys
 * are rejected with the closest known one (a typo must not silently run with defaults), and
 * rules across keys (a scorer that cannot score the unit) are checked even when other keys are
 * wrong. Relative paths in a plan (the model, data files) are read from the plan's folder.
 */
import { Effect, Result, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { isMap, LineCounter, parseDocument } from "yaml"
import { BackendChoices } from "../compute/Backend.ts"
import { formatPath } from "../io/Errors.ts"
import { closestKey, decodeOptions, describeProblems, type Problem } from "../io/SchemaProblems.ts"
import { ScheduleKinds } from "../prune/Schedule.ts"
import { defaultScorer, isScorerOf, scorersFor } from "../prune/Scorers.ts"
import { hubIdUnlessLocal } from "../hub/HubId.ts"
import { DatasetRef } from "../services/Datasets.ts"
import { type RewardRef, RewardSpec } from "../services/RewardModel.ts"
import { TunerConfig } from "../tune/Tuners.ts"

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const Fraction = Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1))
const withDefault = <S extends Schema.Top>(value: S["Encoded"]) => Schema.withDecodingDefaultKey<S>(Effect.succeed(value))

export const Units = ["neurons", "heads", "layers"] as const
export type Unit = (typeof Units)[number]
export const Unit = Schema.Literals(Units)
/** One unit, or a list pruned in turn within an iteration. */
export const UnitChoice = Schema.Union([Unit, Schema.NonEmptyArray(Unit)])


/** A scorer for every unit, or one per unit (`{ neurons: wanda, heads: contribution }`; a unit left out gets its default). */
export const ScorerChoice = Schema.Union([
  Schema.String,
  Schema.Struct({ neurons: Schema.optionalKey(Schema.String), heads: Schema.optionalKey(Schema.String), layers: Schema.optionalKey(Schema.String) })
])

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

/** Formats every accepted stage can also be exported in (see StageExport.ts); ONNX for now. */
export const ExportFormats = ["onnx"] as const
export type ExportFormat = (typeof ExportFormats)[number]

export const Plan = Schema.Struct({
  /** A Hugging Face checkpoint folder or Hub id (`org/name[@revision]`); "base" is the bundled model. */
  model: Schema.NonEmptyString,
  target: Target,
  /** What to prune each iteration; a list prunes each in turn within an iteration. */
  unit: UnitChoice.pipe(withDefault("neurons")),
  iterations: PositiveInt.pipe(withDefault(8)),
  schedule: Schema.Literals(ScheduleKinds).pipe(withDefault("constant")),
  /** Importance scorer, one for every unit or one per unit; by default each unit's own (see `simmer prune --help`). */
  scorer: Schema.optionalKey(ScorerChoice),
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
  /**
   * What GRPO maximises: the weighted sum of rule rewards (`{ rule: arith }`) and learned reward
   * models (`{ model: path/to/rm }`); required when a tuner is `grpo`.
   */
  reward: Schema.optionalKey(RewardSpec),
  gates: Gates.pipe(withDefault({})),
  /** Baselines to run after the loop in the same machinery, with the same total tuning budget. */
  baselines: Schema.Array(Schema.Literals(["one-shot", "prune-only"])).pipe(withDefault([])),
  /** Also write every accepted stage in these formats, to `<run>/onnx/<stage>/` (none by default). */
  export: Schema.Array(Schema.Literals(ExportFormats)).pipe(withDefault([])),
  seed: Schema.Int.pipe(withDefault(1)),
  backend: Schema.Literals(BackendChoices).pipe(withDefault("auto"))
})
export type Plan = typeof Plan.Type

/** The bundled base model, for plans that say `model: base`. */
export const bundledModelPath = fileURLToPath(new URL("../../models/base", import.meta.url))

/**
 * The bundled model a `model:` entry probably meant when it names no folder: a bare name close
 * to a bundled one (`basee`, `Base`), else undefined.
 */
export const bundledModelMeant = (written: string): string | undefined =>
  /[/\\]/.test(written) || written === "base" ? undefined : closestKey(written, ["base"])

/** The checkpoint folder a plan names: the bundled model, or the path (made absolute when the plan was read). */
export const resolveModelPath = (plan: Plan): string => (plan.model === "base" ? bundledModelPath : plan.model)

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

/** The scorer used for `unit`: the plan's (for that unit), else the unit's default. */
export const scorerFor = (plan: Plan, unit: Unit): string =>
  (typeof plan.scorer === "string" ? plan.scorer : plan.scorer?.[unit]) ?? defaultScorer[unit]

export class InvalidPlan extends Schema.TaggedError<InvalidPlan>()("InvalidPlan", {
  path: Schema.String,
  problems: Schema.Array(Schema.String),
  message: Schema.String
}) {}

const decodePlan = Schema.decodeUnknownResult(Plan)
const decodeUnits = Schema.decodeUnknownResult(UnitChoice)

/** The line (1-based) of the YAML node at a problem's path, when it can be found. */
const lineOf = (doc: ReturnType<typeof parseDocument>, counter: LineCounter, path: ReadonlyArray<PropertyKey>) => {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth) as Array<string | number>, true)
    const range = (node as { range?: [number, number, number] } | null)?.range
    if (range !== undefined) return counter.linePos(range[0]).line
  }
  return undefined
}

export const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The units a raw plan document prunes (the default when it names none), or undefined when its `unit` is not valid. */
export const rawUnits = (raw: Record<string, unknown>): ReadonlyArray<Unit> | undefined => {
  const decoded = raw.unit === undefined ? Result.succeed("neurons" as const) : decodeUnits(raw.unit)
  if (Result.isFailure(decoded)) return undefined
  return typeof decoded.success === "string" ? [decoded.success] : decoded.success
}

/**
 * Rules across keys, checked on the raw document so they are reported together with every
 * other problem: each rule looks only at keys that are valid on their own.
 */
const crossKeyProblems = (raw: Record<string, unknown>): Array<Problem> => {
  const units = rawUnits(raw)
  if (units === undefined) return []
  const problems: Array<Problem> = []
  // Every scorer named must score its unit; the valid ones are listed per unit.
  const cannot = (scorer: string, unit: Unit) => `"${scorer}" cannot score ${unit}; choose one of ${scorersFor[unit].join(", ")}`
  if (typeof raw.scorer === "string") {
    const scorer = raw.scorer
    const wrong = units.filter((u) => !isScorerOf(u, scorer))
    for (const unit of wrong) {
      problems.push({
        path: ["scorer"],
        message: cannot(scorer, unit) +
          (units.length > 1 ? `, or name one per unit: scorer: { ${units.map((u) => `${u}: ${isScorerOf(u, scorer) ? scorer : defaultScorer[u]}`).join(", ")} }` : "")
      })
    }
  } else if (isRecord(raw.scorer)) {
    for (const [unit, scorer] of Object.entries(raw.scorer)) {
      if (!(Units as ReadonlyArray<string>).includes(unit) || typeof scorer !== "string") continue
      if (!units.includes(unit as Unit)) {
        problems.push({ path: ["scorer", unit], message: `the plan does not prune ${unit} (unit: ${units.join(", ")}); add ${unit} to unit, or remove it here` })
      } else if (!isScorerOf(unit as Unit, scorer)) {
        problems.push({ path: ["scorer", unit], message: cannot(scorer, unit as Unit) })
      }
    }
  }
  const tuners = Array.isArray(raw.tuner) ? raw.tuner : [raw.tuner]
  const grpo = tuners.findIndex((t) => isRecord(t) && t.kind === "grpo")
  if (grpo >= 0 && raw.reward === undefined) {
    problems.push({
      path: Array.isArray(raw.tuner) ? ["tuner", grpo] : ["tuner"],
      message: "a grpo tuner maximises the plan's reward: add reward:, e.g. reward: [{ rule: arith }] " +
        "(rules: arith, program, question-answer; or { model: path/to/reward-model })"
    })
  }
  const perLayer = isRecord(raw.target) ? raw.target.perLayer : undefined
  if (isRecord(perLayer)) {
    const named = Object.keys(perLayer).filter((k): k is Unit => (Units as ReadonlyArray<string>).includes(k))
    for (const unit of named.filter((u) => !units.includes(u))) {
      problems.push({
        path: ["target", "perLayer", unit],
        message: `the plan does not prune ${unit} (unit: ${units.join(", ")}); add ${unit} to unit, or remove it here`
      })
    }
    if (named.length === Object.keys(perLayer).length && !named.some((u) => units.includes(u))) {
      problems.push({ path: ["target", "perLayer"], message: `give how many ${units.join(" / ")} each layer keeps` })
    }
  }
  return problems
}

/** Every checkpoint a plan names (its model, distillation teachers, reward models), as written. */
export const planCheckpoints = (plan: Plan): ReadonlyArray<string> => [
  plan.model,
  ...plannedTuners(plan).flatMap((t) => (t.kind === "distill" && t.teacher !== undefined ? [t.teacher] : [])),
  ...(plan.reward ?? []).flatMap((r) => ("model" in r ? [r.model] : []))
]

/** Every dataset reference of a plan. */
export const planDatasets = (plan: Plan): ReadonlyArray<DatasetRef> =>
  [...plan.data.tune, ...plan.data.calibration, ...plan.data.evaluate, plan.data.general]

/**
 * The plan with every checkpoint it names (see planCheckpoints) passed through `checkpoint`
 * and every dataset reference through `dataset`: how paths are made absolute and Hub ids pinned.
 */
export const mapPlanInputs = (
  plan: Plan,
  checkpoint: (written: string) => string,
  dataset: (ref: DatasetRef) => DatasetRef
): Plan => {
  const refs = <A extends ReadonlyArray<DatasetRef>>(list: A) => list.map(dataset) as unknown as A
  const tuner = (t: TunerConfig): TunerConfig => (t.kind === "distill" && t.teacher !== undefined ? { ...t, teacher: checkpoint(t.teacher) } : t)
  const reward = (r: RewardRef): RewardRef => ("model" in r ? { ...r, model: checkpoint(r.model) } : r)
  const [first, ...rest] = plannedTuners(plan).map(tuner)
  return {
    ...plan,
    model: checkpoint(plan.model),
    data: {
      ...plan.data,
      tune: refs(plan.data.tune),
      calibration: refs(plan.data.calibration),
      evaluate: refs(plan.data.evaluate),
      general: dataset(plan.data.general)
    },
    tuner: Array.isArray(plan.tuner) ? [first, ...rest] : first,
    ...(plan.reward !== undefined ? { reward: [reward(plan.reward[0]), ...plan.reward.slice(1).map(reward)] } : {})
  }
}

/**
 * The plan with its relative paths (model, data files) made absolute from `folder`; "base" stays
 * the bundled model, and a Hub id (`org/name`, no such local path) stays an id.
 */
export const resolvePlanPaths = (plan: Plan, folder: string): Plan =>
  mapPlanInputs(
    plan,
    (written) => (written === "base" || hubIdUnlessLocal(written, folder) !== undefined ? written : resolve(folder, written)),
    (ref) => ("file" in ref ? { ...ref, file: resolve(folder, ref.file) } : ref)
  )

export interface ParsePlanOptions {
  /** The folder relative paths in the plan are read from; default: the plan file's folder. */
  readonly relativeTo?: string
  /**
   * Checks beyond the text (files exist, the target is reachable: see PlanCheck), given the raw
   * document and the folder relative paths are read from; their problems are reported with the
   * plan's own, with lines.
   */
  readonly inputChecks?: (raw: Record<string, unknown>, folder: string) => Effect.Effect<ReadonlyArray<Problem>>
}

/** A plan that parsed and decoded, with what its checks beyond the text need: the document, for lines. */
export interface ParsedPlan {
  readonly plan: Plan
  /** Runs checks beyond the text (PlanCheck) on the same document: their problems with lines, as parsePlan reports them. */
  readonly checkInputs: (inputChecks: NonNullable<ParsePlanOptions["inputChecks"]>) => Effect.Effect<void, InvalidPlan>
}

/**
 * Parses and validates plan text (YAML, of which JSON is a subset). All problems at once, each
 * as "line N: path: message".
 */
export const parsePlan = (text: string, path: string, options: ParsePlanOptions = {}): Effect.Effect<Plan, InvalidPlan> =>
  parsePlanChecked(text, path, options).pipe(Effect.map((parsed) => parsed.plan))

/**
 * parsePlan, keeping the document so that checks beyond the text can run later (the daemon
 * runs them only once the plan's paths are known to lie under its allowed roots).
 */
export const parsePlanChecked = (text: string, path: string, options: ParsePlanOptions = {}): Effect.Effect<ParsedPlan, InvalidPlan> => {
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
  const raw: unknown = doc.toJS()
  if (!isMap(doc.contents) || !isRecord(raw)) return fail(["the plan must be a mapping of keys (model:, target:, data:, ...)"])
  const folder = options.relativeTo ?? dirname(path)
  const failLocated = (problems: ReadonlyArray<Problem>) => {
    const located = problems.map((problem) => ({ problem, line: lineOf(doc, counter, problem.path) }))
    // In reading order; problems without a line keep their place among themselves at the end.
    located.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity))
    return fail(located.map(({ line, problem }) => {
      const where = formatPath(problem.path)
      return `${line !== undefined ? `line ${line}: ` : ""}${where !== "" ? `${where}: ` : ""}${problem.message}`
    }))
  }
  const checkInputs = (inputChecks: NonNullable<ParsePlanOptions["inputChecks"]>) =>
    Effect.flatMap(inputChecks(raw, folder), (problems) => (problems.length === 0 ? Effect.void : failLocated(problems)))
  return Effect.gen(function*() {
    const decoded = decodePlan(raw, decodeOptions)
    const problems = [
      ...(Result.isFailure(decoded) ? describeProblems(decoded.failure.issue) : []),
      ...crossKeyProblems(raw),
      ...(options.inputChecks !== undefined ? yield* options.inputChecks(raw, folder) : [])
    ]
    if (Result.isSuccess(decoded) && problems.length === 0) return { plan: resolvePlanPaths(decoded.success, folder), checkInputs }
    return yield* failLocated(problems)
  })
}

export const readPlan = (path: string, options: ParsePlanOptions = {}): Effect.Effect<{ plan: Plan; text: string }, InvalidPlan> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new InvalidPlan({ path, problems: [], message: `Cannot read the plan ${path}: ${(cause as Error).message}.` })
  }).pipe(Effect.flatMap((text) => parsePlan(text, path, options).pipe(Effect.map((plan) => ({ plan, text })))))
