/**
 * Splitting a right-padded loss batch into micro-batches of rows of similar length, each cut
 * to its longest row, so that block-by-block gradients stop computing padding.
 *
 * Exact up to float summation order: a row's positions after its last weighted one change no
 * loss term (attention is causal), so cutting them removes work and nothing else; a row with no
 * weighted position is dropped. Every micro-batch keeps the whole batch's weight sum as its
 * normaliser, so the micro-batches' losses and gradients add up to the batch's mean.
 *
 * How many micro-batches is a trade: each one repeats every kernel call of every block, a fixed
 * cost that dwarfs a row's arithmetic on a small model and vanishes beside it on a large one.
 * The grouping minimises rows computed plus that fixed cost counted in rows of the model's
 * block (`microBatchOverheadFlops`), so a tiny model's batch stays whole and unchanged.
 */
import type { LossBatch } from "./Blockwise.ts"
import type { ModelConfig } from "./ModelConfig.ts"

/** A part of a batch: its rows, and the weight sum of the whole batch its mean divides by. */
export interface MicroBatch extends LossBatch {
  readonly normaliser: number
}

/**
 * The fixed cost of one more micro-batch, in floating-point operations of a block's products:
 * an estimate, not a measurement, of the kernel calls of a forward and a recomputed backward
 * block (some 150 calls, about 2.5 ms on the wasm backend) at the wasm product's ~46 GFLOP/s
 * on one thread. At smollm2-135m it splits a batch wherever six padded rows are saved.
 */
export const microBatchOverheadFlops = 1.2e8

/** Multiply-adds ×2 of one token through block products, averaged over the blocks (forward, backward and recompute: ×3). */
const rowFlops = (config: ModelConfig): number => {
  const D = config.hiddenSize
  const hd = config.headDim
  const perLayer = config.layers.map((l) => D * (l.numHeads + 2 * l.numKeyValueHeads) * hd + l.numHeads * hd * D + 3 * D * l.intermediateSize)
  return (3 * 2 * perLayer.reduce((a, b) => a + b, 0)) / Math.max(config.layers.length, 1)
}

/** Positions of row b up to and including its last weighted one (0 when none is weighted: the row changes no loss). */
export const usedLength = (batch: LossBatch, b: number): number => {
  for (let t = batch.seqLen - 1; t >= 0; t--) if (batch.weights[b * batch.seqLen + t] !== 0) return t + 1
  return 0
}

/**
 * Groups of rows (ascending by used length, contiguous in that order) that minimise
 * Σ rows × longest used length + overhead × groups: a shortest-path over the sorted rows.
 */
const groupRows = (lengths: ReadonlyArray<number>, overheadRows: number): Array<Array<number>> => {
  const order = lengths.map((_, b) => b).filter((b) => lengths[b] > 0).sort((a, b) => lengths[a] - lengths[b] || a - b)
  const n = order.length
  const cost = new Float64Array(n + 1).fill(Infinity)
  const from = new Int32Array(n + 1)
  cost[0] = 0
  for (let j = 1; j <= n; j++) {
    const longest = lengths[order[j - 1]]
    for (let i = 0; i < j; i++) {
      const c = cost[i] + (j - i) * longest + overheadRows
      if (c < cost[j]) {
        cost[j] = c
        from[j] = i
      }
    }
  }
  const groups: Array<Array<number>> = []
  for (let j = n; j > 0; j = from[j]) groups.unshift(order.slice(from[j], j).sort((a, b) => a - b))
  return groups
}

/** The batch's micro-batches; the batch itself (as one) when cutting saves nothing. */
export const lengthBuckets = (config: ModelConfig, batch: LossBatch, overheadFlops = microBatchOverheadFlops): Array<MicroBatch> => {
  const { batchSize: B, seqLen: T, weights } = batch
  const normaliser = Math.max(weights.reduce((a, w) => a + w, 0), 1)
  const lengths = Array.from({ length: B }, (_, b) => usedLength(batch, b))
  const groups = groupRows(lengths, overheadFlops / rowFlops(config))
  const whole = groups.length === 1 && groups[0].length === B && Math.max(...lengths) === T
  if (groups.length === 0 || whole) return [{ ...batch, normaliser }]
  return groups.map((rows) => {
    const seqLen = Math.max(...rows.map((b) => lengths[b]))
    const part = (source: Int32Array | Float32Array, target: Int32Array | Float32Array) =>
      rows.forEach((b, r) => target.set(source.subarray(b * T, b * T + seqLen), r * seqLen))
    const ids = new Int32Array(rows.length * seqLen)
    const targets = new Int32Array(rows.length * seqLen)
    const partWeights = new Float32Array(rows.length * seqLen)
    part(batch.ids, ids)
    part(batch.targets, targets)
    part(weights, partWeights)
    return { ids, targets, weights: partWeights, batchSize: rows.length, seqLen, normaliser }
  })
}
