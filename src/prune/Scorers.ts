/**
 * Every scorer by name: which exist for which unit, what data they need, and one entry point
 * that runs the named scorer on a model (for the CLI, plans and the loop).
 */
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { residentSource, type WeightSource } from "../model/WeightSource.ts"
import type { MemoryBudgetExceeded } from "../services/DeviceMemory.ts"
import type { CalibrationBatch, ScoringProgress } from "./Calibration.ts"
import { InvalidPruneRequest } from "./Errors.ts"
import { contributionScores } from "./HeadScorers.ts"
import { blockInfluenceScores, skipLossScores } from "./LayerScorers.ts"
import { activationScores, type ContrastiveOptions, contrastiveScores, taylorScores, wandaScores } from "./NeuronScorers.ts"
import { randomScores } from "./RandomScores.ts"
import type { Scores, Unit } from "./Scores.ts"
import { scorersFor } from "./Scores.ts"

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
  /** Told after each decoder block a scorer finished. */
  readonly progress?: ScoringProgress
}

/** Whether a scorer reads general text as well as task data. */
export const needsGeneralText = (scorer: string): boolean => scorer === "contrastive"

/** Whether a scorer reads calibration data at all. */
export const needsCalibration = (scorer: string): boolean => scorer !== "random"

/** Fails unless `scorer` is one of the scorers of `unit`. */
export const checkScorer = (unit: Unit, scorer: string): Effect.Effect<string, InvalidPruneRequest> =>
  scorersFor[unit].includes(scorer)
    ? Effect.succeed(scorer)
    : Effect.fail(
      new InvalidPruneRequest({
        message: `There is no scorer "${scorer}" for ${unit}; choose one of: ${scorersFor[unit].join(", ")}.`
      })
    )

/** Runs the named scorer of `unit` on a model in memory. */
export const scoreModel = (
  config: ModelConfig,
  params: Params,
  unit: Unit,
  scorer: string,
  data: CalibrationData,
  options: ScoreOptions = {}
): Effect.Effect<Scores, InvalidPruneRequest | MemoryBudgetExceeded> =>
  scoreSource(residentSource(config, params), unit, scorer, data, options)

/** Runs the named scorer of `unit` on a model whose weights come from `source`, block by block. */
export const scoreSource = <E>(
  source: WeightSource<E>,
  unit: Unit,
  scorer: string,
  data: CalibrationData,
  options: ScoreOptions = {}
): Effect.Effect<Scores, E | InvalidPruneRequest | MemoryBudgetExceeded> =>
  Effect.gen(function*() {
    yield* checkScorer(unit, scorer)
    if (scorer === "random") return randomScores(source.config, unit, options.seed ?? 0)
    if (data.task.length === 0) {
      return yield* new InvalidPruneRequest({ message: `The ${scorer} scorer needs calibration data, and none was given.` })
    }
    const progress = options.progress ?? {}
    switch (`${unit}/${scorer}`) {
      case "neurons/activation":
        return yield* activationScores(source, data.task, progress)
      case "neurons/wanda":
        return yield* wandaScores(source, data.task, progress)
      case "neurons/taylor":
        return yield* taylorScores(source, data.task, progress)
      case "neurons/contrastive": {
        if (data.general === undefined || data.general.length === 0) {
          return yield* new InvalidPruneRequest({
            message: "The contrastive scorer compares task data with general text, and no general text was given."
          })
        }
        return yield* contrastiveScores(source, data.task, data.general, options.contrastive, progress)
      }
      case "heads/contribution":
        return yield* contributionScores(source, data.task, progress)
      case "layers/block-influence":
        return yield* blockInfluenceScores(source, data.task, progress)
      case "layers/skip-loss":
        return yield* skipLossScores(source, data.task, progress)
    }
    return yield* Effect.die(new Error(`scoreSource: ${unit}/${scorer} is listed but not dispatched`))
  })
