/**
 * Helpers for the pruning tests: tiny models with planted dead units, logits, and random
 * calibration batches.
 */
import * as tf from "@tensorflow/tfjs"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import type { LayerParams, Linear, Params } from "../../src/model/Params.ts"
import { Rng } from "../../src/model/Rng.ts"
import { forward } from "../../src/model/Transformer.ts"
import { type CalibrationBatch, calibrationBatch } from "../../src/prune/Calibration.ts"

export const ids = [[1, 5, 9, 2, 14, 3, 7, 7, 11], [4, 4, 16, 0, 2, 8, 13, 1, 6]]

export const logitsOf = (config: ModelConfig, params: Params, input: Array<Array<number>> = ids): Float32Array =>
  tf.tidy(() => forward(config, params, tf.tensor2d(input, undefined, "int32")).logits.dataSync() as Float32Array)

/** `t` with the given rows (axis 0) or columns (axis 1) set to zero; `t` is disposed. */
export const zeroed = <T extends tf.Tensor>(t: T, axis: 0 | 1, indices: ReadonlyArray<number>): T => {
  const result = tf.tidy(() => {
    const size = (t.shape as Array<number>)[axis]
    const keep = Float32Array.from({ length: size }, (_, i) => (indices.includes(i) ? 0 : 1))
    const shape = t.rank === 1 ? [size] : axis === 0 ? [size, 1] : [1, size]
    return tf.mul(t, tf.tensor(keep, shape)) as T
  })
  t.dispose()
  return result
}

const zeroLinear = (l: Linear, axis: 0 | 1, indices: ReadonlyArray<number>, bias: boolean): Linear =>
  l.b === undefined
    ? { w: zeroed(l.w, axis, indices) }
    : { w: zeroed(l.w, axis, indices), b: bias ? zeroed(l.b, 0, indices) : l.b }

/** Replaces layer `i` of the params (the old LayerParams' replaced tensors are disposed by the edit). */
export const editLayer = (params: Params, i: number, edit: (p: LayerParams) => LayerParams): Params => ({
  ...params,
  layers: params.layers.map((p, j) => (j === i ? edit(p) : p))
})

/** Neurons of layer i whose gate and up columns and down row are all zero: their activation is exactly 0. */
export const deadNeurons = (params: Params, i: number, neurons: ReadonlyArray<number>): Params =>
  editLayer(params, i, (p) => ({
    ...p,
    gate: zeroLinear(p.gate, 1, neurons, true),
    up: zeroLinear(p.up, 1, neurons, true),
    down: zeroLinear(p.down, 0, neurons, false)
  }))

/** Neurons of layer i whose down_proj column (internal row) alone is zero. */
export const silentNeurons = (params: Params, i: number, neurons: ReadonlyArray<number>): Params =>
  editLayer(params, i, (p) => ({ ...p, down: zeroLinear(p.down, 0, neurons, false) }))

/** A block whose output projections (o_proj, down_proj, with biases) are zero: it adds nothing to the residual. */
export const deadBlock = (params: Params, i: number): Params =>
  editLayer(params, i, (p) => {
    const zeroAll = (l: Linear): Linear => ({
      w: zeroed(l.w, 0, Array.from({ length: l.w.shape[0] }, (_, k) => k)),
      ...(l.b === undefined ? {} : { b: zeroed(l.b, 0, Array.from({ length: l.b.shape[0] }, (_, k) => k)) })
    })
    return { ...p, o: zeroAll(p.o), down: zeroAll(p.down) }
  })

/** Key/value group g of layer i with zero o_proj rows: its contribution to the output is exactly 0. */
export const deadGroup = (config: ModelConfig, params: Params, i: number, g: number): Params => {
  const shape = config.layers[i]
  const width = (shape.numHeads / shape.numKeyValueHeads) * config.headDim
  return editLayer(params, i, (p) => ({
    ...p,
    o: zeroLinear(p.o, 0, Array.from({ length: width }, (_, k) => g * width + k), false)
  }))
}

/** Random token sequences of lengths in [minLen, maxLen] (ids 1..vocab-1; 0 pads), in batches. */
export const randomBatches = (
  vocabSize: number,
  options: { sequences: number; batchSize: number; minLen: number; maxLen: number; seed: number }
): Array<CalibrationBatch> => {
  const rng = Rng.seeded(options.seed)
  const sequences = Array.from({ length: options.sequences }, () =>
    Array.from({ length: options.minLen + rng.int(options.maxLen - options.minLen + 1) }, () => 1 + rng.int(vocabSize - 1)))
  const batches: Array<CalibrationBatch> = []
  for (let s = 0; s < sequences.length; s += options.batchSize) {
    batches.push(calibrationBatch(sequences.slice(s, s + options.batchSize), 0, 64))
  }
  return batches
}

export const argmin = (values: ArrayLike<number>): number => {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i] < values[best]) best = i
  return best
}
