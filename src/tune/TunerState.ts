/**
 * Pieces of tuner snapshots that every tuner shares: the Schemas of a data cursor and a
 * generator state, and weight-shaped tensors (optimizer moments, a frozen reference) saved under
 * a name prefix and restored with their shapes checked against the model they resume on.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Result, Schema } from "effect"
import type { NamedTensor } from "../io/Safetensors.ts"
import type { Model } from "../model/Model.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { assembleParams, type Params, paramSpecs, paramTensors } from "../model/Params.ts"
import { readFloats } from "../model/Read.ts"
import { type AdamWState, initAdamW } from "./AdamW.ts"
import { type DataCursor, startCursor } from "./Batches.ts"
import { InvalidTunerState, type TunerSnapshot } from "./Tuner.ts"

/** A generator state (Rng): four 32-bit words. */
export const RngStateSchema = Schema.Tuple([Schema.Number, Schema.Number, Schema.Number, Schema.Number])

/** Where a data stream stands (Batches.DataCursor). */
export const CursorSchema = Schema.Struct({
  epoch: Schema.Int,
  index: Schema.Int,
  epochRng: RngStateSchema
})

/** One tensor per parameter (paramSpecs order), saved as `<prefix>.<parameter name>`. */
export const weightShapedTensors = (
  config: ModelConfig,
  prefix: string,
  tensors: ReadonlyArray<tf.Tensor>
): Effect.Effect<Array<NamedTensor>> =>
  Effect.forEach(paramSpecs(config), (spec, i) =>
    Effect.map(readFloats(tensors[i]), (data) => ({ name: `${prefix}.${spec.name}`, shape: tensors[i].shape, data })))

/** The AdamW moments as `m.*` and `v.*` tensors. */
export const momentTensors = (config: ModelConfig, optimizer: AdamWState): Effect.Effect<Array<NamedTensor>> =>
  Effect.gen(function*() {
    const m = yield* weightShapedTensors(config, "m", optimizer.m)
    const v = yield* weightShapedTensors(config, "v", optimizer.v)
    return [...m, ...v]
  })

/**
 * The `<prefix>.*` tensors of a snapshot as new tensors in paramSpecs order, or why they do not
 * fit the model (one missing, or shaped unlike its weight).
 */
export const restoreWeightShaped = (
  config: ModelConfig,
  weights: ReadonlyArray<tf.Tensor>,
  saved: ReadonlyArray<NamedTensor>,
  prefix: string,
  what: string
): { readonly tensors: Array<tf.Tensor> } | { readonly problem: string } => {
  const byName = new Map(saved.map((t) => [t.name, t]))
  const specs = paramSpecs(config)
  for (const [i, spec] of specs.entries()) {
    const t = byName.get(`${prefix}.${spec.name}`)
    if (t === undefined) return { problem: `the ${what} ${prefix}.${spec.name} is missing` }
    if (t.shape.join(",") !== weights[i].shape.join(",")) {
      return { problem: `the ${what} ${prefix}.${spec.name} has shape [${t.shape}], the weight has [${weights[i].shape}]` }
    }
  }
  return { tensors: specs.map((spec) => {
    const t = byName.get(`${prefix}.${spec.name}`)!
    return tf.tensor(t.data, [...t.shape])
  }) }
}

/** Params from tensors in paramSpecs order. */
export const paramsFrom = (config: ModelConfig, tensors: ReadonlyArray<tf.Tensor>): Params => {
  const index = new Map(paramSpecs(config).map((spec, i) => [spec.name, i]))
  return assembleParams(config, (name) => tensors[index.get(name)!])
}

/**
 * The AdamW moments of a snapshot for `model`, failing with the tuner's InvalidTunerState when
 * one is missing or shaped unlike its weight.
 */
export const restoreMoments = <E>(
  model: Model,
  snapshot: TunerSnapshot,
  invalid: (why: string) => E
): Effect.Effect<{ readonly m: Array<tf.Tensor>; readonly v: Array<tf.Tensor> }, E> =>
  Effect.suspend(() => {
    const weights = paramTensors(model.config, model.params)
    const m = restoreWeightShaped(model.config, weights, snapshot.tensors, "m", "optimizer moment")
    if ("problem" in m) return Effect.fail(invalid(m.problem))
    const v = restoreWeightShaped(model.config, weights, snapshot.tensors, "v", "optimizer moment")
    if ("problem" in v) {
      tf.dispose(m.tensors)
      return Effect.fail(invalid(v.problem))
    }
    return Effect.succeed({ m: m.tensors, v: v.tensors })
  })

/** The state of a tuner that walks its data with a cursor (SFT, distillation): weights, moments, cursor. */
export interface CursorState {
  readonly params: Params
  readonly optimizer: AdamWState
  readonly cursor: DataCursor
}

/** What a cursor tuner's snapshot holds besides its tensors: the optimizer step and the data cursor. */
export const CursorSnapshotState = Schema.Struct({ step: Schema.Int, cursor: CursorSchema })
const encodeCursorState = Schema.encodeSync(CursorSnapshotState)
const decodeCursorState = Schema.decodeUnknownResult(CursorSnapshotState)

/** A fresh cursor state on `model`'s weights: zero moments, the data order of `seed`. */
export const freshCursorState = (model: Model, seed: number): Effect.Effect<CursorState> =>
  Effect.sync(() => ({ params: model.params, optimizer: initAdamW(paramTensors(model.config, model.params)), cursor: startCursor(seed) }))

/** A cursor state's snapshot: its step and cursor, with the moments as tensors. */
export const cursorSnapshot = (config: ModelConfig, state: CursorState): Effect.Effect<TunerSnapshot> =>
  Effect.suspend(() => {
    const encoded = encodeCursorState({ step: state.optimizer.step, cursor: state.cursor })
    return Effect.map(momentTensors(config, state.optimizer), (tensors) => ({ state: encoded, tensors }))
  })

/** The cursor state a snapshot saved, on `model`'s weights, or InvalidTunerState saying why it does not fit. */
export const restoreCursorState = (kind: string, model: Model, snapshot: TunerSnapshot): Effect.Effect<CursorState, InvalidTunerState> =>
  Effect.gen(function*() {
    const invalid = (why: string) =>
      new InvalidTunerState({ kind, message: `The saved ${kind} tuning state cannot be resumed: ${why}.` })
    const decoded = decodeCursorState(snapshot.state)
    if (Result.isFailure(decoded)) return yield* invalid("its step and data cursor do not decode")
    const moments = yield* restoreMoments(model, snapshot, invalid)
    return { params: model.params, optimizer: { step: decoded.success.step, ...moments }, cursor: decoded.success.cursor as DataCursor }
  })
