/**
 * Every scorer by name: which exist for which unit, what data they need, and one entry point
 * that runs the named scorer on a model (for the CLI, plans and the loop).
 */
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import type { CalibrationBatch } from "./Calibration.ts"
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

/** Runs the named scorer of `unit` on the model. */
export const scoreModel = (
  config: ModelConfig,
  params: Params,
  unit: Unit,
  scorer: string,
  data: CalibrationData,
  options: ScoreOptions = {}
): Effect.Effect<Scores, InvalidPruneRequest> =>
  Effect.gen(function*() {
    yield* checkScorer(unit, scorer)
    if (scorer === "random") return randomScores(config, unit, options.seed ?? 0)
    if (data.task.length === 0) {
      return yield* new InvalidPruneRequest({ message: `The ${scorer} scorer needs calibration data, and none was given.` })
    }
    switch (`${unit}/${scorer}`) {
      case "neurons/activation":
        return activationScores(config, params, data.task)
      case "neurons/wanda":
        return wandaScores(config, params, data.task)
      case "neurons/taylor":
        return taylorScores(config, params, data.task)
      case "neurons/contrastive": {
        if (data.general === undefined || data.general.length === 0) {
          return yield* new InvalidPruneRequest({
            message: "The contrastive scorer compares task data with general text, and no general text was given."
          })
        }
        return contrastiveScores(config, params, data.task, data.general, options.contrastive)
      }
      case "heads/contribution":
        return contributionScores(config, params, data.task)
      case "layers/block-influence":
        return blockInfluenceScores(config, params, data.task)
      case "layers/skip-loss":
        return skipLossScores(config, params, data.task)
    }
    return yield* Effect.die(new Error(`scoreModel: ${unit}/${scorer} is listed but not dispatched`))
  })
