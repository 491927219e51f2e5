/**
 * Next-token cross-entropy without full-vocabulary logits: the LM head is applied in chunks of
 * vocabulary rows, and a running maximum and sum of exponentials per row give the
 * log-normaliser exactly (the online log-sum-exp), so at most rows × chunk logits exist at a
 * time. A [64 × 128, 151,936] logits tensor would be 5 GB; a chunk here is at most 128 MB.
 * The target's logit is the dot product of the hidden state with the target's head row.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { MemoryBudgetExceeded } from "./Footprint.ts"
import { readFloats, readScalar } from "./Read.ts"
import type { WeightSource } from "./WeightSource.ts"

/** Logits held at once: rows × chunk ≤ this many floats (128 MB). */
export const maxChunkLogits = 2 ** 25

/** Vocabulary rows per chunk for `rows` hidden states: as many as fit `maxChunkLogits`, at least 256. */
export const vocabChunk = (rows: number, vocab: number): number =>
  Math.min(vocab, Math.max(256, Math.floor(maxChunkLogits / Math.max(rows, 1))))

const advice = "Lower the batch size (--batch-size) or the sequence length."

/** log Σ_v exp(final · head_v) per row of final [N, D], as a [N, 1] tensor (the caller disposes it). */
export const chunkedLogSumExp = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  final: tf.Tensor2D,
  chunk = vocabChunk(final.shape[0], source.config.vocabSize)
): Effect.fn.Return<tf.Tensor2D, E | MemoryBudgetExceeded> {
  const [N, D] = final.shape
  const V = source.config.vocabSize
  // Running max and sum per row; released by Effect.ensuring however the pass ends (a failed
  // yield skips a generator's finally blocks).
  const running: { max?: tf.Tensor2D; sum?: tf.Tensor2D } = {}
  const release = Effect.sync(() => tf.dispose([running.max, running.sum].filter((t) => t !== undefined)))
  return yield* Effect.gen(function*() {
    for (let first = 0; first < V; first += chunk) {
      const count = Math.min(chunk, V - first)
      yield* source.room.ensure("a chunk of logits", 3 * N * count * 4 + count * D * 4, advice)
      const rows = yield* source.headRows(first, count)
      const { max, sum } = running
      const [nextMax, nextSum] = tf.tidy(() => {
        const logits = tf.matMul(final, rows, false, true) // [N, count]
        const chunkMax = tf.max(logits, 1, true)
        const m = max === undefined ? chunkMax : tf.maximum(max, chunkMax)
        const exps = tf.sum(tf.exp(tf.sub(logits, m)), 1, true)
        return [m, sum === undefined ? exps : tf.add(tf.mul(sum, tf.exp(tf.sub(max!, m))), exps)] as Array<tf.Tensor2D>
      })
      rows.dispose()
      tf.dispose([max, sum].filter((t) => t !== undefined))
      running.max = nextMax
      running.sum = nextSum
      yield* Effect.yieldNow
    }
    return tf.tidy(() => tf.add(running.max!, tf.log(running.sum!)) as tf.Tensor2D)
  }).pipe(Effect.ensuring(release))
})

/** The logit of each row's target, final_r · head_{target_r}: [N, 1] (the caller disposes it). */
const targetLogits = <E>(source: WeightSource<E>, final: tf.Tensor2D, targets: Int32Array) =>
  Effect.map(source.headGather(targets), (rows) => {
    const picked = tf.tidy(() => tf.sum(tf.mul(final, rows), 1, true) as tf.Tensor2D)
    rows.dispose()
    return picked
  })

/** −log p(target_r) for every row of final hidden states [N, D] (after the final norm). */
export const chunkedNll = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  final: tf.Tensor2D,
  targets: Int32Array,
  chunk = vocabChunk(final.shape[0], source.config.vocabSize)
): Effect.fn.Return<Float32Array, E | MemoryBudgetExceeded> {
  const lse = yield* chunkedLogSumExp(source, final, chunk)
  const picked = yield* targetLogits(source, final, targets).pipe(Effect.onError(() => Effect.sync(() => lse.dispose())))
  const nll = tf.tidy(() => tf.reshape(tf.sub(lse, picked), [-1]))
  tf.dispose([lse, picked])
  return yield* readFloats(nll, true)
})

/**
 * The loss Σ_r c_r · (−log p(target_r)) for row coefficients c (e.g. weight / Σ weight) and its
 * gradient with respect to final [N, D]: c_r · (Σ_v p_rv · head_v − head_{target_r}), the
 * softmax-weighted head rows accumulated chunk by chunk after a first pass for the normaliser.
 */
export const chunkedNllGradient = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  final: tf.Tensor2D,
  targets: Int32Array,
  coefficients: Float32Array,
  chunk = vocabChunk(final.shape[0], source.config.vocabSize)
): Effect.fn.Return<{ readonly loss: number; readonly gradient: tf.Tensor2D }, E | MemoryBudgetExceeded> {
  const [N, D] = final.shape
  const V = source.config.vocabSize
  const lse = yield* chunkedLogSumExp(source, final, chunk)
  const held: { expected: tf.Tensor2D } = { expected: tf.zeros([N, D]) as tf.Tensor2D }
  return yield* Effect.gen(function*() {
    for (let first = 0; first < V; first += chunk) {
      const count = Math.min(chunk, V - first)
      yield* source.room.ensure("a chunk of logits", 3 * N * count * 4 + count * D * 4, advice)
      const rows = yield* source.headRows(first, count)
      const previous = held.expected
      held.expected = tf.tidy(() => tf.add(previous, tf.matMul(tf.exp(tf.sub(tf.matMul(final, rows, false, true), lse)), rows)) as tf.Tensor2D)
      tf.dispose([rows, previous])
    }
    const picked = yield* source.headGather(targets)
    const c = tf.tensor2d(coefficients, [N, 1])
    const gradient = tf.tidy(() => tf.mul(tf.sub(held.expected, picked), c) as tf.Tensor2D)
    const total = tf.tidy(() => tf.sum(tf.mul(tf.sub(lse, tf.sum(tf.mul(final, picked), 1, true)), c)))
    tf.dispose([picked, c])
    // Read after the tidy (it cannot span an await); the gradient is released if the read is cut short.
    const loss = yield* readScalar(total, true).pipe(Effect.onInterrupt(() => Effect.sync(() => gradient.dispose())))
    return { loss, gradient }
  }).pipe(Effect.ensuring(Effect.sync(() => tf.dispose([lse, held.expected]))))
})
