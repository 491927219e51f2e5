/**
 * One pruning step: score the units, select the ones to keep, cut the rest. The three stay
 * separate (Scorers, Select, Surgery); this only strings them together and reports the sizes,
 * for `simmer prune` and each iteration of the loop.
 */
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countParams, type ParamCounts, type Params } from "../model/Params.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import type { MemoryBudgetExceeded } from "../model/Footprint.ts"
import type { IllegalPrune, InvalidPruneRequest } from "./Errors.ts"
import { type PruneTarget, targetCounts } from "./Schedule.ts"
import { type CalibrationData, scoreModel, type ScoreOptions } from "./Scorers.ts"
import type { Scores, Unit } from "./Scores.ts"
import { type Allocation, selectBlocks, selectGlobal, selectUniform } from "./Select.ts"
import type { Model } from "../model/Model.ts"
import { applyPlan, type KeepPlan, type SurgeryOptions } from "./Surgery.ts"

export interface PruneRequest {
  readonly unit: Unit
  readonly scorer: string
  readonly target: PruneTarget
  /** Uniform per layer (default) or one ranking across layers (neurons and heads only). */
  readonly allocation?: Allocation
}

export interface PruneResult {
  readonly model: Model
  readonly scores: Scores
  readonly plan: KeepPlan
  readonly before: ParamCounts
  readonly after: ParamCounts
}

/** The plan that keeps `counts` units (per layer, or blocks) according to `scores`. */
export const planFor = (scores: Scores, counts: ReadonlyArray<number>, allocation: Allocation = "uniform"): KeepPlan => {
  if (scores.unit === "layers") return selectBlocks(scores, counts[0])
  return allocation === "global"
    ? selectGlobal(scores, counts.reduce((a, b) => a + b, 0))
    : selectUniform(scores, counts)
}

/**
 * Scores, selects and cuts. The input model is consumed on success (see Surgery) unless
 * `surgery.keepOriginal`; on failure it is untouched.
 */
export const pruneOnce = (
  config: ModelConfig,
  params: Params,
  room: DeviceRoom,
  request: PruneRequest,
  data: CalibrationData,
  options: { readonly score?: ScoreOptions; readonly surgery?: SurgeryOptions } = {}
): Effect.Effect<PruneResult, IllegalPrune | InvalidPruneRequest | MemoryBudgetExceeded> =>
  Effect.gen(function*() {
    const counts = yield* targetCounts(config, request.unit, request.target)
    const scores = yield* scoreModel(config, params, room, request.unit, request.scorer, data, options.score)
    const plan = planFor(scores, counts, request.allocation)
    const before = countParams(config)
    const model = yield* applyPlan(config, params, plan, options.surgery)
    return { model, scores, plan, before, after: countParams(model.config) }
  })
