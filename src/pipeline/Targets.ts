/**
 * Where the loop is heading: the units per layer (blocks, for layers) the model keeps at the end,
 * from the plan's target (prune/Schedule.ts spreads the way there over the iterations).
 *
 * A parameter target is a fraction of the original's non-embedding parameters (what pruning
 * can shrink); every listed unit keeps the same fraction f of its original count, f found by
 * bisection so the final shape is within the target.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countParams } from "../model/Params.ts"
import { unitCounts } from "../prune/Select.ts"
import { type Plan, planUnitsOf, type Unit } from "./Plan.ts"

/** The shape that keeps `keep` units of `unit` (uniformly, per layer), for counting parameters. */
export const reshaped = (config: ModelConfig, unit: Unit, keep: ReadonlyArray<number>): ModelConfig => {
  if (unit === "layers") return { ...config, layers: config.layers.slice(0, keep[0]) }
  return {
    ...config,
    layers: config.layers.map((l, i) =>
      unit === "neurons"
        ? { ...l, intermediateSize: keep[i] }
        : { ...l, numHeads: (l.numHeads / l.numKeyValueHeads) * keep[i], numKeyValueHeads: keep[i] })
  }
}

const keepFraction = (count: number, f: number) => Math.max(1, Math.round(count * f))

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
  const goal = target.parameters * countParams(config).nonEmbedding
  const shapeAt = (f: number) => {
    let shaped = config
    const counts = new Map<Unit, Array<number>>()
    for (const unit of units) {
      const keep = unitCounts(config, unit).map((n) => keepFraction(n, f))
      counts.set(unit, keep)
      shaped = reshaped(shaped, unit, keep)
    }
    return { counts, params: countParams(shaped).nonEmbedding }
  }
  // The largest f whose shape is within the goal (parameters grow with f).
  let lo = 0
  let hi = 1
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2
    if (shapeAt(mid).params <= goal) lo = mid
    else hi = mid
  }
  return shapeAt(lo).counts
}
