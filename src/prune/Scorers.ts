/**
 * Every scorer by name: a registry by unit, then scorer name, of what each scorer reads and how
 * it runs, so a name listed for a unit always has its implementation; what plans and the CLI
 * accept is derived from it, and one entry point runs the named scorer on a model.
 */
import { Effect } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import type { Model } from "../model/Model.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import type { MemoryBudgetExceeded } from "../model/Footprint.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { residentSource, type WeightSource } from "../model/WeightSource.ts"
import type { CalibrationBatch, ScoringProgress } from "./Calibration.ts"
import { InvalidPruneRequest } from "./Errors.ts"
import { contributionScores } from "./HeadScorers.ts"
import { blockInfluenceScores, skipLossScores } from "./LayerScorers.ts"
import { activationScores, type ContrastiveOptions, contrastiveScores, taylorScores, wandaScores } from "./NeuronScorers.ts"
import { ortActivationScores, ortWandaScores } from "./OrtNeuronScorers.ts"
import { randomScores } from "./RandomScores.ts"
import type { ScorerNames, Scores, Unit } from "./Scores.ts"

export interface CalibrationData {
  /** Task data: what every data-driven scorer reads. */
  readonly task: ReadonlyArray<CalibrationBatch>
  /** General text: the other side of the contrastive scorer (only it reads this). */
  readonly general?: ReadonlyArray<CalibrationBatch>
}

export interface ScoreOptions {
  /** Seed of the random scorer. */
  readonly seed?: number
  readonly contrastive?: ContrastiveOptions
  /** Told after each decoder block a scorer finished (tfjs's block-by-block pass only). */
  readonly progress?: ScoringProgress
  /** The engine a model in memory is scored on where its scorer has an ONNX Runtime pass; default tfjs. */
  readonly inference?: InferenceEngine
}

/** What a scorer reads: nothing (random), task data, or task data and general text (contrastive). */
export type ScorerReads = "nothing" | "task" | "task and general text"

export interface ScorerEntry {
  readonly reads: ScorerReads
  /** Scores `source`'s units; `data.task` is non-empty, and so is `data.general` where `reads` asks for it. */
  readonly run: <E>(
    source: WeightSource<E>,
    data: CalibrationData,
    options: ScoreOptions
  ) => Effect.Effect<Scores, E | InvalidPruneRequest | MemoryBudgetExceeded>
  /** The same scores from one pass of ONNX Runtime over a model in memory, where the graph exposes what the scorer reduces. */
  readonly ort?: (model: Model, data: CalibrationData) => Effect.Effect<Scores>
}

const random = (unit: Unit): ScorerEntry => ({
  reads: "nothing",
  run: (source, _, options) => Effect.succeed(randomScores(source.config, unit, options.seed ?? 0))
})

export const scorerRegistry: { readonly [U in Unit]: Readonly<Record<ScorerNames[U], ScorerEntry>> } = {
  neurons: {
    activation: {
      reads: "task",
      run: (source, data, options) => activationScores(source, data.task, options.progress),
      ort: (model, data) => ortActivationScores(model, data.task)
    },
    contrastive: {
      reads: "task and general text",
      run: (source, data, options) => contrastiveScores(source, data.task, data.general ?? [], options.contrastive, options.progress)
    },
    taylor: { reads: "task", run: (source, data, options) => taylorScores(source, data.task, options.progress) },
    wanda: {
      reads: "task",
      run: (source, data, options) => wandaScores(source, data.task, options.progress),
      ort: (model, data) => ortWandaScores(model, data.task)
    },
    random: random("neurons")
  },
  heads: {
    contribution: { reads: "task", run: (source, data, options) => contributionScores(source, data.task, options.progress) },
    random: random("heads")
  },
  layers: {
    "block-influence": { reads: "task", run: (source, data, options) => blockInfluenceScores(source, data.task, options.progress) },
    "skip-loss": { reads: "task", run: (source, data, options) => skipLossScores(source, data.task, options.progress) },
    random: random("layers")
  }
}

/** The scorers of each unit, in the registry's order. */
export const scorersFor: { readonly [U in Unit]: ReadonlyArray<ScorerNames[U]> } = {
  neurons: Object.keys(scorerRegistry.neurons) as Array<ScorerNames["neurons"]>,
  heads: Object.keys(scorerRegistry.heads) as Array<ScorerNames["heads"]>,
  layers: Object.keys(scorerRegistry.layers) as Array<ScorerNames["layers"]>
}

/** The scorer used when none is named: cheap, data-driven and robust for each unit. */
export const defaultScorer: ScorerNames = {
  neurons: "activation",
  heads: "contribution",
  layers: "block-influence"
}

/** The registry's entry of `scorer` for `unit`, if it has one. */
const entryOf = (unit: Unit, scorer: string): ScorerEntry | undefined =>
  Object.hasOwn(scorerRegistry[unit], scorer) ? (scorerRegistry[unit] as Readonly<Record<string, ScorerEntry>>)[scorer] : undefined

/** Whether the registry has `scorer` for `unit`. */
export const isScorerOf = (unit: Unit, scorer: string): boolean => entryOf(unit, scorer) !== undefined

/** The registry's entry of `scorer` for `unit`; fails, listing the unit's scorers, when it has none. */
const findScorer = (unit: Unit, scorer: string): Effect.Effect<ScorerEntry, InvalidPruneRequest> => {
  const entry = entryOf(unit, scorer)
  return entry !== undefined
    ? Effect.succeed(entry)
    : Effect.fail(
      new InvalidPruneRequest({
        message: `There is no scorer "${scorer}" for ${unit}; choose one of: ${scorersFor[unit].join(", ")}.`
      })
    )
}

/** Fails unless `scorer` is one of the scorers of `unit`. */
export const checkScorer = (unit: Unit, scorer: string): Effect.Effect<string, InvalidPruneRequest> =>
  Effect.as(findScorer(unit, scorer), scorer)

/** What the named scorer of `unit` reads (nothing for a name it does not have). */
export const scorerReads = (unit: Unit, scorer: string): ScorerReads => entryOf(unit, scorer)?.reads ?? "nothing"

/** Whether the named scorer of `unit` has an ONNX Runtime pass (activation and wanda). */
export const scorerRunsOnOrt = (unit: Unit, scorer: string): boolean => entryOf(unit, scorer)?.ort !== undefined

/**
 * Runs the named scorer of `unit` on a model in memory, checking uploads against `room`: on
 * ONNX Runtime when `options.inference` is ort and the scorer has a pass there, else on tfjs.
 */
export const scoreModel = (
  config: ModelConfig,
  params: Params,
  room: DeviceRoom,
  unit: Unit,
  scorer: string,
  data: CalibrationData,
  options: ScoreOptions = {}
): Effect.Effect<Scores, InvalidPruneRequest | MemoryBudgetExceeded> => {
  const ort = options.inference === "ort" ? entryOf(unit, scorer)?.ort : undefined
  return ort !== undefined && data.task.length > 0
    ? ort({ config, params }, data)
    : scoreSource(residentSource(config, params, room), unit, scorer, data, options)
}

/** Runs the named scorer of `unit` on a model whose weights come from `source`, block by block. */
export const scoreSource = <E>(
  source: WeightSource<E>,
  unit: Unit,
  scorer: string,
  data: CalibrationData,
  options: ScoreOptions = {}
): Effect.Effect<Scores, E | InvalidPruneRequest | MemoryBudgetExceeded> =>
  Effect.gen(function*() {
    const entry = yield* findScorer(unit, scorer)
    if (entry.reads !== "nothing" && data.task.length === 0) {
      return yield* new InvalidPruneRequest({ message: `The ${scorer} scorer needs calibration data, and none was given.` })
    }
    if (entry.reads === "task and general text" && (data.general === undefined || data.general.length === 0)) {
      return yield* new InvalidPruneRequest({
        message: `The ${scorer} scorer compares task data with general text, and no general text was given.`
      })
    }
    return yield* entry.run(source, data, options)
  })
