/**
 * A size given as a share of the non-embedding parameters (what pruning can shrink; embeddings
 * stay), turned into units to keep. One meaning everywhere: a plan's `target.parameters`,
 * `simmer prune --keep-params` and `plan check` all go through here.
 *
 * Every listed kind of unit keeps the same fraction f of its original count in every layer (at
 * least one), f the largest whose shape stays within the share. Removing only some kinds of
 * unit has a floor: with one neuron, one key/value group or one block left, everything else
 * remains, so `smallestShare` says how far those units alone can go.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countParams } from "../model/Params.ts"
import type { Unit } from "./Scores.ts"
import { unitCounts } from "./Select.ts"

/** The shape that keeps `keep` units of `unit` (per layer; for layers, the first `keep[0]` blocks), for counting parameters. */
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

/** Every kind in `units` keeping the fraction f of its units: the counts and the non-embedding parameters left. */
const shapeAt = (config: ModelConfig, units: ReadonlyArray<Unit>, f: number) => {
  let shaped = config
  const counts = new Map<Unit, Array<number>>()
  for (const unit of units) {
    const keep = unitCounts(config, unit).map((n) => keepFraction(n, f))
    counts.set(unit, keep)
    shaped = reshaped(shaped, unit, keep)
  }
  return { counts, nonEmbedding: countParams(shaped).nonEmbedding }
}

/** The smallest share of the non-embedding parameters that removing only `units` can reach (one of each left per layer). */
export const smallestShare = (config: ModelConfig, units: ReadonlyArray<Unit>): number =>
  shapeAt(config, units, 0).nonEmbedding / countParams(config).nonEmbedding

/**
 * Units per layer of every kind in `units` (blocks, for layers, as a one-element array) that keep
 * at most `share` of the non-embedding parameters, as close to it as whole units allow; the
 * smallest shape when `share` is below `smallestShare`.
 */
export const countsForShare = (config: ModelConfig, units: ReadonlyArray<Unit>, share: number): Map<Unit, Array<number>> => {
  const goal = share * countParams(config).nonEmbedding
  // The largest f whose shape is within the goal (parameters grow with f).
  let lo = 0
  let hi = 1
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2
    if (shapeAt(config, units, mid).nonEmbedding <= goal) lo = mid
    else hi = mid
  }
  return shapeAt(config, units, lo).counts
}

/** "heads", "neurons and heads", "neurons, heads and layers" */
export const unitsText = (units: ReadonlyArray<Unit>): string =>
  units.length <= 1 ? units.join("") : `${units.slice(0, -1).join(", ")} and ${units[units.length - 1]}`

const leftText: Record<Unit, string> = {
  neurons: "one MLP neuron per layer",
  heads: "one key/value group per layer",
  layers: "one decoder block"
}

/**
 * Why `share` cannot be reached by removing only `units`, in a sentence, or undefined when it can.
 * The floor is rounded up to a tenth of a percent so the message never suggests an unreachable number.
 */
export const unreachableShare = (config: ModelConfig, units: ReadonlyArray<Unit>, share: number): string | undefined => {
  const floor = smallestShare(config, units)
  if (floor <= share) return undefined
  const floorText = `${(Math.ceil(floor * 1000) / 10).toFixed(1)}%`
  return `${(share * 100).toFixed(1)}% of the non-embedding parameters cannot be reached by removing ${unitsText(units)} ` +
    `alone: with ${units.map((u) => leftText[u]).join(" and ")} left, ${floorText} remains. Prune other units as well, ` +
    `or aim at ${floorText} or more.`
}
