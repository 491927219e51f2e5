/**
 * Pruning a checkpoint folder into another without loading the model: scoring runs block by
 * block from the lazily read shards (one block's weights on the device at a time), and surgery
 * happens while the new checkpoint is written, one tensor at a time — each is read from the
 * original, cut on the host in file orientation (rows or columns of the kept units) and encoded
 * in the original dtype. Memory is bounded by one block and one tensor whatever the depth, and a
 * BF16 checkpoint stays BF16 bit for bit in every value that survives.
 */
import { Effect } from "effect"
import type { LazyCheckpoint } from "../io/Checkpoint.ts"
import { saveCheckpointTensors } from "../io/CheckpointWriter.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { countParams, type ParamCounts, type ParamSpec } from "../model/Params.ts"
import { checkpointSource } from "../model/WeightSource.ts"
import type { ScoringProgress } from "./Calibration.ts"
import { IllegalPrune } from "./Errors.ts"
import { planFor, type PruneRequest } from "./Prune.ts"
import { targetCounts } from "./Schedule.ts"
import { type CalibrationData, scoreSource, type ScoreOptions } from "./Scorers.ts"
import type { Scores } from "./Scores.ts"
import { type KeepPlan, planProblem } from "./Surgery.ts"

/** Rows `keep` of a row-major [rows, cols] matrix (or entries of a vector, cols = 1). */
export const takeRows = (data: Float32Array, cols: number, keep: ReadonlyArray<number>): Float32Array => {
  const out = new Float32Array(keep.length * cols)
  keep.forEach((r, k) => out.set(data.subarray(r * cols, (r + 1) * cols), k * cols))
  return out
}

/** Columns `keep` of a row-major [rows, cols] matrix. */
export const takeColumns = (data: Float32Array, rows: number, cols: number, keep: ReadonlyArray<number>): Float32Array => {
  const out = new Float32Array(rows * keep.length)
  for (let r = 0; r < rows; r++) {
    const from = r * cols
    const to = r * keep.length
    for (let k = 0; k < keep.length; k++) out[to + k] = data[from + keep[k]]
  }
  return out
}

const expand = (blocks: ReadonlyArray<number>, width: number): Array<number> =>
  blocks.flatMap((b) => Array.from({ length: width }, (_, j) => b * width + j))

/**
 * The pruned model's config and a reader of each of its tensors (file orientation), cut from
 * the original checkpoint by the plan. Fails with IllegalPrune for an illegal plan, before
 * anything is read.
 */
export const prunedTensors = (checkpoint: LazyCheckpoint, plan: KeepPlan) =>
  Effect.suspend(() => {
    const { config } = checkpoint
    const checked = planProblem(config, plan)
    if ("problem" in checked) {
      return Effect.fail(new IllegalPrune({ unit: plan.unit, message: `Cannot prune: ${checked.problem}. Nothing was written.` }))
    }
    const next: ModelConfig = checked.config
    const tensor = (spec: ParamSpec) => {
      const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(spec.name)
      if (layer === null) return checkpoint.read(spec.name)
      const i = Number(layer[1])
      const rest = layer[2]
      if (plan.unit === "layers") return checkpoint.read(`model.layers.${checked.keep[0][i]}.${rest}`)
      const keep = checked.keep[i]
      const shape = config.layers[i]
      const D = config.hiddenSize
      const cut = (indices: ReadonlyArray<number>, columns: boolean) =>
        checkpoint.read(spec.name).pipe(Effect.map((data) => {
          if (!columns) return takeRows(data, spec.name.endsWith(".bias") ? 1 : D, indices)
          return takeColumns(data, D, data.length / D, indices)
        }))
      if (plan.unit === "neurons") {
        if (/^mlp\.(gate|up)_proj\.(weight|bias)$/.test(rest)) return cut(keep, false)
        if (rest === "mlp.down_proj.weight") return cut(keep, true)
        return checkpoint.read(spec.name)
      }
      const hd = config.headDim
      const R = shape.numHeads / shape.numKeyValueHeads
      const qRows = expand(keep, R * hd)
      const kvRows = expand(keep, hd)
      if (/^self_attn\.q_proj\.(weight|bias)$/.test(rest)) return cut(qRows, false)
      if (/^self_attn\.[kv]_proj\.(weight|bias)$/.test(rest)) return cut(kvRows, false)
      if (rest === "self_attn.o_proj.weight") return cut(qRows, true)
      return checkpoint.read(spec.name)
    }
    return Effect.succeed({ config: next, tensor })
  })

export interface PruneCheckpointOptions {
  readonly score?: ScoreOptions
  readonly progress?: ScoringProgress
  /** Told as each tensor of the new checkpoint starts being written. */
  readonly onTensor?: (name: string, done: number, total: number) => void
  readonly onExisting?: "fail" | "replace"
}

export interface PruneCheckpointResult {
  readonly config: ModelConfig
  readonly scores: Scores
  readonly plan: KeepPlan
  readonly before: ParamCounts
  readonly after: ParamCounts
  readonly scoreSeconds: number
  readonly saveSeconds: number
}

/** Scores the open checkpoint block by block, selects, and writes the pruned checkpoint to `out`. */
export const pruneCheckpoint = Effect.fn("PruneCheckpoint")(function*(
  checkpoint: LazyCheckpoint,
  room: DeviceRoom,
  out: string,
  request: PruneRequest,
  data: CalibrationData,
  options: PruneCheckpointOptions = {}
) {
  const counts = yield* targetCounts(checkpoint.config, request.unit, request.target)
  const started = performance.now()
  const scores = yield* scoreSource(checkpointSource(checkpoint, room), request.unit, request.scorer, data, {
    ...options.score,
    ...(options.progress !== undefined ? { progress: options.progress } : {})
  })
  const scored = performance.now()
  const plan = planFor(scores, counts, request.allocation)
  const pruned = yield* prunedTensors(checkpoint, plan)
  yield* saveCheckpointTensors(out, {
    config: pruned.config,
    hfConfig: checkpoint.hfConfig,
    dtype: checkpoint.dtype,
    ...(checkpoint.generationConfig !== undefined ? { generationConfig: checkpoint.generationConfig } : {}),
    extraFiles: checkpoint.files.tokenizer,
    tensor: pruned.tensor,
    ...(options.onTensor !== undefined ? { onTensor: options.onTensor } : {}),
    onExisting: options.onExisting ?? "fail"
  })
  const result: PruneCheckpointResult = {
    config: pruned.config,
    scores,
    plan,
    before: countParams(checkpoint.config),
    after: countParams(pruned.config),
    scoreSeconds: (scored - started) / 1000,
    saveSeconds: (performance.now() - scored) / 1000
  }
  return result
})
