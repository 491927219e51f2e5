/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay, as torch.optim.AdamW computes it:
 *   p ← p − lr·wd·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − lr · (m / (1−β1^t)) / (√(v / (1−β2^t)) + ε)
 * Weight decay applies to matrices only (not to norms or biases), the usual choice for
 * transformers. The optimizer is functional: `step` returns new tensors and disposes the old
 * ones it owned, and its whole state can be read out for a checkpoint and restored.
 */
import * as tf from "@tensorflow/tfjs"

export interface AdamWOptions {
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number
}

export const defaultAdamW: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }

export interface AdamWState {
  /** Number of updates applied so far. */
  readonly step: number
  readonly m: ReadonlyArray<tf.Tensor>
  readonly v: ReadonlyArray<tf.Tensor>
}

export const initAdamW = (params: ReadonlyArray<tf.Tensor>): AdamWState => ({
  step: 0,
  m: params.map((p) => tf.zerosLike(p)),
  v: params.map((p) => tf.zerosLike(p))
})

export const disposeAdamW = (state: AdamWState): void => {
  tf.dispose([...state.m, ...state.v])
}

/**
 * One update. Returns the new parameters and state; disposes the old moments (the caller owns
 * the old parameters and gradients).
 */
export const adamWStep = (
  options: AdamWOptions,
  state: AdamWState,
  params: ReadonlyArray<tf.Tensor>,
  grads: ReadonlyArray<tf.Tensor>,
  lr: number
): { params: Array<tf.Tensor>; state: AdamWState } => {
  const t = state.step + 1
  const bias1 = 1 - Math.pow(options.beta1, t)
  const bias2 = 1 - Math.pow(options.beta2, t)
  // One parameter at a time, releasing its old moments as soon as the new ones exist: the
  // intermediates of a tidy live until it ends, so one tidy over all parameters would hold
  // about 16 copies of the model at once.
  const params2: Array<tf.Tensor> = []
  const m2: Array<tf.Tensor> = []
  const v2: Array<tf.Tensor> = []
  params.forEach((p, i) => {
    const [next, m, v] = tf.tidy(() => {
      const g = grads[i]
      const m = tf.add(tf.mul(state.m[i], options.beta1), tf.mul(g, 1 - options.beta1))
      const v = tf.add(tf.mul(state.v[i], options.beta2), tf.mul(tf.square(g), 1 - options.beta2))
      const decayed = p.rank >= 2 && options.weightDecay > 0 ? tf.mul(p, 1 - lr * options.weightDecay) : p
      const update = tf.div(tf.div(m, bias1), tf.add(tf.sqrt(tf.div(v, bias2)), options.eps))
      return [tf.sub(decayed, tf.mul(update, lr)), m, v]
    })
    state.m[i].dispose()
    state.v[i].dispose()
    params2.push(next)
    m2.push(m)
    v2.push(v)
  })
  return { params: params2, state: { step: t, m: m2, v: v2 } }
}
