/**
 * Where the loop is heading: the units per layer (blocks, for layers) the model keeps after each
 * iteration, from the plan's target and schedule.
 *
 * A parameter target is a fraction of the original's non-embedding parameters (what pruning
 * can shrink), turned into units by prune/ParameterShare.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countsForShare } from "../prune/ParameterShare.ts"
import { unitCounts } from "../prune/Select.ts"
import { type Plan, planUnitsOf, type Unit } from "./Plan.ts"

/** Final units per layer of every planned unit kind. */
export const finalCounts = (config: ModelConfig, plan: Plan): Map<Unit, Array<number>> => {
  const units = planUnitsOf(plan)
  const target = plan.target
  if ("perLayer" in target) {
    return new Map(units.map((unit) => {
      const wanted = target.perLayer[unit]
      return [unit, unitCounts(config, unit).map((n) => (wanted === undefined ? n : Math.min(n, wanted)))]
    }))
  }
  return countsForShare(config, units, target.parameters)
}

/**
 * Units per layer after iteration i (1-based) of n, moving evenly ("constant"/"linear"), with
 * big early steps ("cubic"), or all at once ("one-shot") from `start` to `end`.
 */
export const scheduledCounts = (
  schedule: Plan["schedule"],
  start: ReadonlyArray<number>,
  end: ReadonlyArray<number>,
  i: number,
  n: number
): Array<number> => {
  if (schedule === "one-shot" || i >= n) return [...end]
  const progress = schedule === "cubic" ? 1 - Math.pow(1 - i / n, 3) : i / n
  return start.map((s, l) => s - Math.round((s - end[l]) * progress))
}

/** Halfway (rounded towards `from`) between the current counts and a step's goal: a rolled-back retry. */
export const halfStep = (from: ReadonlyArray<number>, goal: ReadonlyArray<number>): Array<number> =>
  from.map((f, l) => f - Math.floor((f - goal[l]) / 2))
