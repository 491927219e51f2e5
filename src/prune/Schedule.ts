/**
 * Pruning schedules: how many units remain after each iteration of the loop, on the way from
 * the model's current size to the target.
 *
 * - `constant`: a fixed number of units per layer per iteration (the paper's: 1000 MLP neurons
 *   per layer per iteration on 7-9B models); the last step takes what is left, so the number of
 *   iterations follows from the step.
 * - `linear`: N equal steps (the step follows from N).
 * - `cubic` (Zhu & Gupta, 2017): removed(i) = total · (1 − (1 − i/N)³): big steps while the model
 *   has slack, small ones near the target.
 * - `one-shot`: everything in one iteration, the baseline PTL is compared against.
 *
 * A target is a number of units per layer, a fraction of units, or a fraction of the
 * non-embedding parameters;
 * `targetCounts` turns any of them into units per layer (blocks, for layers). Removal is
 * uniform per layer: every layer follows the same schedule from its own width.
 */
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { InvalidPruneRequest } from "./Errors.ts"
import { countsForShare, unreachableShare } from "./ParameterShare.ts"
import type { Unit } from "./Scores.ts"
import { keepCount, unitCounts } from "./Select.ts"

export type PruneSchedule =
  | { readonly kind: "constant"; readonly step: number }
  | { readonly kind: "linear"; readonly iterations: number }
  | { readonly kind: "cubic"; readonly iterations: number }
  | { readonly kind: "one-shot" }

/**
 * Units left after each iteration 1..N, going from `start` to `end` (non-increasing, last one
 * `end`). Empty when there is nothing to remove.
 */
export const keptAfterEach = (schedule: PruneSchedule, start: number, end: number): Array<number> => {
  const total = Math.max(0, start - end)
  if (total === 0) return []
  switch (schedule.kind) {
    case "one-shot":
      return [end]
    case "constant": {
      const step = Math.max(1, Math.floor(schedule.step))
      const n = Math.ceil(total / step)
      return Array.from({ length: n }, (_, i) => start - Math.min((i + 1) * step, total))
    }
    case "linear":
    case "cubic": {
      const n = Math.max(1, Math.floor(schedule.iterations))
      const removed = (i: number) =>
        schedule.kind === "linear" ? (total * i) / n : total * (1 - Math.pow(1 - i / n, 3))
      return Array.from({ length: n }, (_, i) => start - Math.round(removed(i + 1)))
    }
  }
}

/** Units removed at iteration `i` (1-based); 0 past the end of the schedule. */
export const removedAt = (schedule: PruneSchedule, start: number, end: number, i: number): number => {
  const kept = keptAfterEach(schedule, start, end)
  if (i < 1 || i > kept.length) return 0
  return (i === 1 ? start : kept[i - 2]) - kept[i - 1]
}

/**
 * The schedule for every layer at once: entry [i][l] is what layer l keeps after iteration i+1.
 * Layers that reach their target early stay there; the length is the longest layer schedule.
 */
export const scheduleLayers = (
  schedule: PruneSchedule,
  start: ReadonlyArray<number>,
  end: ReadonlyArray<number>
): Array<Array<number>> => {
  const perLayer = start.map((s, l) => keptAfterEach(schedule, s, end[l]))
  const n = Math.max(0, ...perLayer.map((k) => k.length))
  return Array.from({ length: n }, (_, i) => perLayer.map((k, l) => (k.length === 0 ? start[l] : k[Math.min(i, k.length - 1)])))
}

export type PruneTarget =
  /** Units to keep in every layer (neurons, key/value groups), or blocks to keep (layers). */
  | { readonly kind: "units"; readonly keep: number }
  /** Fraction of each layer's units (or of the blocks) to keep. */
  | { readonly kind: "fraction"; readonly keep: number }
  /** Fraction of the non-embedding parameters to keep, by removing only `unit` (as a plan's target; see ParameterShare). */
  | { readonly kind: "parameters"; readonly keep: number }

/**
 * Units to keep per layer (for layers: a one-element array, the blocks to keep) to reach the
 * target. A parameter target keeps the same fraction of every layer's units, as close to the
 * target as whole units allow without exceeding it; it fails when removing only this kind of
 * unit cannot get there (everything else is larger than the target).
 */
export const targetCounts = (
  config: ModelConfig,
  unit: Unit,
  target: PruneTarget
): Effect.Effect<Array<number>, InvalidPruneRequest> =>
  Effect.suspend(() => {
    const sizes = unitCounts(config, unit)
    const invalid = (message: string) => Effect.fail(new InvalidPruneRequest({ message }))
    switch (target.kind) {
      case "units": {
        if (!Number.isInteger(target.keep) || target.keep < 1) {
          return invalid(`A target in units must be a whole number of at least 1 ${unit} to keep, got ${target.keep}.`)
        }
        return Effect.succeed(sizes.map((n) => Math.min(n, target.keep)))
      }
      case "fraction":
      case "parameters": {
        if (!(Number.isFinite(target.keep) && target.keep > 0 && target.keep <= 1)) {
          return invalid(`A target fraction must be greater than 0 and at most 1, got ${target.keep}.`)
        }
        if (target.kind === "fraction") return Effect.succeed(sizes.map((n) => keepCount(n, target.keep)))
        const unreachable = unreachableShare(config, [unit], target.keep)
        if (unreachable !== undefined) return invalid(unreachable)
        return Effect.succeed(countsForShare(config, [unit], target.keep).get(unit)!)
      }
    }
  })
