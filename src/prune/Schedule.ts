/**
 * Pruning schedules: how many units remain after each iteration of the loop, on the way from
 * the original size to the target — the one place the loop's steps are decided.
 *
 * - `constant`: the same number of units per layer removed in each of N iterations (the paper's
 *   fixed step: 1000 MLP neurons per layer per iteration on 7-9B models).
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

export const ScheduleKinds = ["constant", "cubic", "one-shot"] as const
export type ScheduleKind = (typeof ScheduleKinds)[number]

/**
 * Units per layer after iteration i (1-based) of n, going from `start` to `end`: equal steps
 * ("constant"), big steps first ("cubic"), or all at once ("one-shot"). Past n it stays at `end`.
 */
export const scheduledCounts = (
  schedule: ScheduleKind,
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
