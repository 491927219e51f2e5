/**
 * Where the loop is heading: the units per layer (blocks, for layers) the model keeps at the end,
 * from the plan's target (prune/Schedule.ts spreads the way there over the iterations).
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
