/**
 * Selection: from scores to the units that stay (a KeepPlan for Surgery). Separate from
 * scoring, so any scorer works with any allocation, and from surgery, so a plan can be shown,
 * logged or checked before anything is cut.
 *
 * - Uniform (the default): the same number of units kept in every layer, the best of each layer,
 *   so a Hugging Face config (one intermediate_size, one head count) still describes the model.
 * - Global: one ranking across layers, so layers end up with different widths. Only on request:
 *   scores of different layers must be comparable for it to make sense, and the saved
 *   config.json then needs per-layer sizes, which plain transformers cannot load.
 * - Blocks: the best `keep` decoder blocks.
 *
 * Least important first means lowest score first, ties by index (see Scores.rankAscending).
 */
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { InvalidPruneRequest } from "./Errors.ts"
import { type HeadScores, type LayerScores, type NeuronScores, rankAscending, type Scores, type Unit } from "./Scores.ts"
import type { KeepPlan } from "./Surgery.ts"

/** `fraction` of `total` units, rounded to the nearest count, at least one and at most all. */
export const keepCount = (total: number, fraction: number): number =>
  Math.min(total, Math.max(1, Math.round(total * fraction)))

/** The indices of the `count` most important units, in ascending index order. */
export const keepHighest = (values: ArrayLike<number>, count: number): Array<number> =>
  rankAscending(values)
    .slice(Math.max(0, values.length - Math.max(0, count)))
    .sort((a, b) => a - b)

/** Units of one layer, as the config counts them. */
export const unitsPerLayer = (config: ModelConfig, unit: "neurons" | "heads"): Array<number> =>
  config.layers.map((l) => (unit === "neurons" ? l.intermediateSize : l.numKeyValueHeads))

/** The best `keep` units of every layer (a number for all layers, or one per layer). */
export const selectUniform = (scores: NeuronScores | HeadScores, keep: number | ReadonlyArray<number>): KeepPlan => ({
  unit: scores.unit,
  keep: scores.perLayer.map((values, i) => keepHighest(values, typeof keep === "number" ? keep : keep[i]))
})

/**
 * The best `keepTotal` units over all layers by one ranking, each layer keeping at least
 * `minPerLayer` (its best ones) so no layer is emptied.
 */
export const selectGlobal = (scores: NeuronScores | HeadScores, keepTotal: number, minPerLayer = 1): KeepPlan => {
  const kept = scores.perLayer.map((values) => new Set(keepHighest(values, minPerLayer)))
  const reserved = kept.reduce((n, s) => n + s.size, 0)
  const candidates: Array<{ layer: number; index: number; score: number }> = []
  scores.perLayer.forEach((values, layer) => {
    values.forEach((score, index) => {
      if (!kept[layer].has(index)) candidates.push({ layer, index, score: Number.isNaN(score) ? -Infinity : score })
    })
  })
  // Most important first; ties keep the higher index (the lower one goes first, as everywhere).
  candidates.sort((a, b) => b.score - a.score || b.layer - a.layer || b.index - a.index)
  for (const c of candidates.slice(0, Math.max(0, keepTotal - reserved))) kept[c.layer].add(c.index)
  return { unit: scores.unit, keep: kept.map((s) => [...s].sort((a, b) => a - b)) }
}

/** The best `keep` decoder blocks. */
export const selectBlocks = (scores: LayerScores, keep: number): KeepPlan => ({
  unit: "layers",
  keep: keepHighest(scores.perBlock, keep)
})

export type Allocation = "uniform" | "global"

/** Checks that a keep fraction is in (0, 1]. */
export const checkFraction = (fraction: number): Effect.Effect<number, InvalidPruneRequest> =>
  Number.isFinite(fraction) && fraction > 0 && fraction <= 1
    ? Effect.succeed(fraction)
    : Effect.fail(
      new InvalidPruneRequest({
        message: `The target must be the fraction of units to keep, greater than 0 and at most 1 (0.75 keeps three ` +
          `quarters); got ${fraction}.`
      })
    )

/**
 * Keeps `fraction` of the scored units: of each layer's neurons or key/value groups (uniform,
 * rounded per layer to a legal count: at least one), of all of them (global), or of the blocks.
 */
export const selectFraction = (
  config: ModelConfig,
  scores: Scores,
  fraction: number,
  allocation: Allocation = "uniform"
): Effect.Effect<KeepPlan, InvalidPruneRequest> =>
  Effect.map(checkFraction(fraction), (f) => {
    if (scores.unit === "layers") return selectBlocks(scores, keepCount(config.layers.length, f))
    const sizes = unitsPerLayer(config, scores.unit)
    if (allocation === "global") {
      const total = sizes.reduce((a, b) => a + b, 0)
      return selectGlobal(scores, Math.max(sizes.length, Math.round(total * f)))
    }
    return selectUniform(scores, sizes.map((n) => keepCount(n, f)))
  })

/** Units the plan keeps in each layer (for layers: blocks kept, as a one-element array). */
export const keptCounts = (plan: KeepPlan): Array<number> =>
  plan.unit === "layers" ? [plan.keep.length] : plan.keep.map((k) => k.length)

/** Units before pruning, in the same shape as `keptCounts`. */
export const unitCounts = (config: ModelConfig, unit: Unit): Array<number> =>
  unit === "layers" ? [config.layers.length] : unitsPerLayer(config, unit)
