/**
 * Model surgery: a new, smaller dense model that keeps the given units, everything else as it
 * was.
 *
 * - Neurons of layer l: columns of gate/up (internal [D, I], so neurons are columns here; rows
 *   of gate_proj/up_proj in the file) and their biases, rows of down (internal [I, D]; columns
 *   of down_proj in the file).
 * - Key/value groups of layer l: group g is KV head g and query heads g·R .. g·R + R − 1
 *   (transformers' repeat_kv order), i.e. columns g·R·hd .. (g+1)·R·hd of q (and its bias),
 *   columns g·hd .. (g+1)·hd of k and v (and biases), and the matching rows of o. hidden_size
 *   and head_dim stay; num_attention_heads and num_key_value_heads shrink.
 * - Layers: the kept decoder blocks, renumbered 0.. in their original order.
 *
 * The plan is checked completely before any tensor is touched: an illegal request (a layer left
 * without neurons or groups, no layers, unknown or repeated indices, a shape `shapeProblem`
 * rejects) fails with IllegalPrune and the model is unchanged. On success the input model is
 * consumed: tensors that were cut are released and those that stayed are moved into the result,
 * so only the result may be used (and disposed) afterwards. With `keepOriginal` the input stays
 * valid and the result gets its own handles (tf.clone shares the data, it does not copy it).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { type LayerShape, type ModelConfig, shapeProblem } from "../model/ModelConfig.ts"
import { type LayerParams, type Linear, type Params, paramTensors } from "../model/Params.ts"
import { tidyKeep } from "../model/Tidy.ts"
import type { Model } from "../model/Model.ts"
import { IllegalPrune } from "./Errors.ts"
import type { Unit } from "./Scores.ts"

/** Which units survive: per layer for neurons and heads (indices into that layer), block indices for layers. */
export type KeepPlan =
  | { readonly unit: "neurons"; readonly keep: ReadonlyArray<ReadonlyArray<number>> }
  | { readonly unit: "heads"; readonly keep: ReadonlyArray<ReadonlyArray<number>> }
  | { readonly unit: "layers"; readonly keep: ReadonlyArray<number> }

export interface SurgeryOptions {
  /** Leave the input model valid (its tensors are not released). Default false: the input is consumed. */
  readonly keepOriginal?: boolean
}

const unitName: Record<Unit, string> = { neurons: "MLP neurons", heads: "key/value groups", layers: "decoder blocks" }

/** Sorted copy of `indices` or why they are not a non-empty set of distinct indices below `size`. */
const checkIndices = (indices: ReadonlyArray<number>, size: number, what: string): Array<number> | string => {
  if (indices.length === 0) return `${what} would keep none of its ${size}; every layer needs at least one`
  const sorted = [...indices].sort((a, b) => a - b)
  for (const [k, i] of sorted.entries()) {
    if (!Number.isInteger(i) || i < 0 || i >= size) return `${what} has no index ${i} (valid: 0..${size - 1})`
    if (k > 0 && sorted[k - 1] === i) return `${what} lists index ${i} twice`
  }
  return sorted
}

/** The config after the plan and the sorted kept indices, or why the plan is illegal. */
export const planProblem = (
  config: ModelConfig,
  plan: KeepPlan
): { readonly problem: string } | { readonly config: ModelConfig; readonly keep: ReadonlyArray<ReadonlyArray<number>> } => {
  const L = config.layers.length
  let next: ModelConfig
  let keep: Array<Array<number>>
  if (plan.unit === "layers") {
    const checked = checkIndices(plan.keep, L, "the model")
    if (typeof checked === "string") return { problem: checked.replace("every layer needs at least one", "a model needs at least one block") }
    keep = [checked]
    next = { ...config, layers: checked.map((i) => config.layers[i]) }
  } else {
    if (plan.keep.length !== L) {
      return { problem: `the plan lists ${plan.keep.length} layer(s) but the model has ${L}` }
    }
    keep = []
    const layers: Array<LayerShape> = []
    for (const [i, shape] of config.layers.entries()) {
      const size = plan.unit === "neurons" ? shape.intermediateSize : shape.numKeyValueHeads
      const checked = checkIndices(plan.keep[i], size, `layer ${i}`)
      if (typeof checked === "string") return { problem: checked }
      keep.push(checked)
      const R = shape.numHeads / shape.numKeyValueHeads
      layers.push(
        plan.unit === "neurons"
          ? { ...shape, intermediateSize: checked.length }
          : { ...shape, numHeads: checked.length * R, numKeyValueHeads: checked.length }
      )
    }
    next = { ...config, layers }
  }
  const problem = shapeProblem(next)
  return problem === undefined ? { config: next, keep } : { problem }
}

/** Indices 0..n-1 in order: nothing to cut. */
const isIdentity = (keep: ReadonlyArray<number>, n: number) => keep.length === n && keep.every((k, i) => k === i)

/** Column (axis 1) or row (axis 0) indices of whole blocks of `width`, e.g. all columns of kept heads. */
const expand = (blocks: ReadonlyArray<number>, width: number): Array<number> =>
  blocks.flatMap((b) => Array.from({ length: width }, (_, j) => b * width + j))

const take = <T extends tf.Tensor>(t: T, indices: ReadonlyArray<number>, axis: number): T =>
  tf.gather(t, tf.tensor1d(indices as Array<number>, "int32"), axis) as T

/** A Linear with output columns (and bias) restricted to `cols`. */
const takeOutputs = (layer: Linear, cols: ReadonlyArray<number>): Linear =>
  layer.b === undefined ? { w: take(layer.w, cols, 1) } : { w: take(layer.w, cols, 1), b: take(layer.b, cols, 0) }

/** A Linear with input rows restricted to `rows` (the bias, over outputs, stays). */
const takeInputs = (layer: Linear, rows: ReadonlyArray<number>): Linear =>
  layer.b === undefined ? { w: take(layer.w, rows, 0) } : { w: take(layer.w, rows, 0), b: layer.b }

const cutLayer = (config: ModelConfig, unit: "neurons" | "heads", shape: LayerShape, p: LayerParams, keep: ReadonlyArray<number>): LayerParams => {
  if (unit === "neurons") {
    if (isIdentity(keep, shape.intermediateSize)) return p
    return { ...p, gate: takeOutputs(p.gate, keep), up: takeOutputs(p.up, keep), down: takeInputs(p.down, keep) }
  }
  if (isIdentity(keep, shape.numKeyValueHeads)) return p
  const hd = config.headDim
  const R = shape.numHeads / shape.numKeyValueHeads
  const qCols = expand(keep, R * hd)
  const kvCols = expand(keep, hd)
  return { ...p, q: takeOutputs(p.q, qCols), k: takeOutputs(p.k, kvCols), v: takeOutputs(p.v, kvCols), o: takeInputs(p.o, qCols) }
}

/** The model with only the plan's units; see the module comment for ownership. */
export const applyPlan = (
  config: ModelConfig,
  params: Params,
  plan: KeepPlan,
  options: SurgeryOptions = {}
): Effect.Effect<Model, IllegalPrune> =>
  Effect.suspend(() => {
    const checked = planProblem(config, plan)
    if ("problem" in checked) {
      return Effect.fail(
        new IllegalPrune({
          unit: plan.unit,
          message: `Cannot prune ${unitName[plan.unit]}: ${checked.problem}. The model was left unchanged.`
        })
      )
    }
    const { unit } = plan
    const layers = unit === "layers"
      ? checked.keep[0].map((i) => params.layers[i])
      : tidyKeep(() => config.layers.map((shape, i) => cutLayer(config, unit, shape, params.layers[i], checked.keep[i])))
    const cut: Params = { ...params, layers }
    const result = options.keepOriginal === true ? cloneShared(cut, config, params) : cut
    if (options.keepOriginal !== true) {
      const survivors = new Set(paramTensors(checked.config, result))
      for (const t of paramTensors(config, params)) if (!survivors.has(t)) t.dispose()
    }
    return Effect.succeed({ config: checked.config, params: result })
  })

/** `next` with every tensor it shares with `original` replaced by a clone (own handle, same data). */
const cloneShared = (next: Params, config: ModelConfig, original: Params): Params => {
  const shared = new Set(paramTensors(config, original))
  const own = <T extends tf.Tensor>(t: T): T => (shared.has(t) ? (tf.clone(t) as T) : t)
  const linear = (l: Linear): Linear => (l.b === undefined ? { w: own(l.w) } : { w: own(l.w), b: own(l.b) })
  return {
    embed: own(next.embed),
    norm: own(next.norm),
    ...(next.lmHead === undefined ? {} : { lmHead: linear(next.lmHead) }),
    layers: next.layers.map((p) => ({
      inputNorm: own(p.inputNorm),
      q: linear(p.q),
      k: linear(p.k),
      v: linear(p.v),
      o: linear(p.o),
      postNorm: own(p.postNorm),
      gate: linear(p.gate),
      up: linear(p.up),
      down: linear(p.down)
    }))
  }
}

/** Keeps the given MLP neurons of each layer. */
export const removeNeurons = (
  config: ModelConfig,
  params: Params,
  keep: ReadonlyArray<ReadonlyArray<number>>,
  options?: SurgeryOptions
) => applyPlan(config, params, { unit: "neurons", keep }, options)

/** Keeps the given key/value groups of each layer (each with its query heads). */
export const removeKvGroups = (
  config: ModelConfig,
  params: Params,
  keep: ReadonlyArray<ReadonlyArray<number>>,
  options?: SurgeryOptions
) => applyPlan(config, params, { unit: "heads", keep }, options)

/** Keeps the given decoder blocks, renumbered in order. */
export const removeLayers = (config: ModelConfig, params: Params, keep: ReadonlyArray<number>, options?: SurgeryOptions) =>
  applyPlan(config, params, { unit: "layers", keep }, options)
