/**
 * Turning tokenized examples into fixed-shape training batches, in an order fixed by a seed.
 *
 * An example is a token sequence and the length of its prompt. Continual pre-training counts
 * every target; SFT (promptMasked) counts only targets inside the completion. Sequences are
 * right-padded to `seqLen` (padding targets never count) and truncated when longer.
 */
import type { TokenBatch } from "../model/Gradients.ts"
import { Rng, type RngState } from "../model/Rng.ts"
import type { TokenizedExample } from "../tasks/Encode.ts"

/** Where the data stream stands: which pass over the data, and how far into it. */
export interface DataCursor {
  readonly epoch: number
  readonly index: number
  /** Generator state at the start of this epoch: the epoch's order is replayed from it. */
  readonly epochRng: RngState
}

export const startCursor = (seed: number): DataCursor => ({ epoch: 0, index: 0, epochRng: Rng.seeded(seed).state() })

export const buildBatch = (
  examples: ReadonlyArray<TokenizedExample>,
  maxSeqLen: number,
  padId: number,
  promptMasked: boolean
): TokenBatch => {
  const B = examples.length
  const seqLen = Math.max(2, Math.min(maxSeqLen, Math.max(...examples.map((e) => e.ids.length))))
  const ids = new Int32Array(B * seqLen).fill(padId)
  const weights = new Float32Array(B * (seqLen - 1))
  examples.forEach((example, b) => {
    const n = Math.min(example.ids.length, seqLen)
    for (let t = 0; t < n; t++) ids[b * seqLen + t] = example.ids[t]
    // weights[t] counts the prediction of token t+1 from position t.
    const firstTarget = promptMasked ? Math.max(example.promptLength, 1) : 1
    for (let target = firstTarget; target < n; target++) weights[b * (seqLen - 1) + target - 1] = 1
  })
  return { ids, weights, batchSize: B, seqLen }
}

/** Order of the examples in the cursor's epoch (a seeded shuffle, replayable from the cursor). */
const epochOrder = (count: number, cursor: DataCursor): Array<number> =>
  Rng.fromState(cursor.epochRng).shuffle(Array.from({ length: count }, (_, i) => i))

/**
 * The next `size` examples from the cursor, wrapping into a new shuffled epoch when the data
 * runs out, and the cursor after them.
 */
export const takeExamples = <A = TokenizedExample>(
  examples: ReadonlyArray<A>,
  cursor: DataCursor,
  size: number
): { batch: Array<A>; cursor: DataCursor } => {
  if (examples.length === 0) throw new Error("takeExamples: no training examples")
  const batch: Array<A> = []
  let current = cursor
  let order = epochOrder(examples.length, current)
  while (batch.length < size) {
    if (current.index >= examples.length) {
      // The next epoch's generator is derived from this epoch's, so the sequence is fixed by the seed.
      const rng = Rng.fromState(current.epochRng)
      rng.nextUint32()
      current = { epoch: current.epoch + 1, index: 0, epochRng: rng.state() }
      order = epochOrder(examples.length, current)
    }
    batch.push(examples[order[current.index]])
    current = { ...current, index: current.index + 1 }
  }
  return { batch, cursor: current }
}
