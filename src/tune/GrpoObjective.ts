/**
 * The arithmetic of GRPO (DeepSeekMath; PTL's RL recovery through EasyR1), per token:
 *
 *   advantage   A = (r − mean(group)) / (std(group) + 1e-6), one per completion, from the rewards
 *               of the completions of the same prompt
 *   ratio       ρ = exp(log π(t) − log π_old(t)), π_old the policy that sampled the rollout
 *   surrogate   min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A), PPO's pessimistic bound (ε = 0.2)
 *   KL          k3 = exp(ref − log π) − (ref − log π) − 1 ≥ 0, the low-variance unbiased
 *               estimator of KL(π ‖ π_ref); 0 with zero gradient where π = π_ref
 *   loss        −surrogate + β·k3, averaged over every completion token of the batch
 *               ("token-mean": long completions weigh by their length)
 *
 * The std is the sample standard deviation (divisor N − 1), as torch.std computes it in TRL and
 * verl. Everything here is a tensor function so the loss can be differentiated through it.
 */
import * as tf from "@tensorflow/tfjs"

/** Group-normalised advantages of consecutive groups of `groupSize` rewards (at least 2 per group). */
export const groupAdvantages = (rewards: ReadonlyArray<number>, groupSize: number, eps = 1e-6): Array<number> => {
  if (groupSize < 2 || rewards.length % groupSize !== 0) {
    throw new RangeError(`groupAdvantages: ${rewards.length} rewards do not form groups of ${groupSize} (at least 2)`)
  }
  const out: Array<number> = []
  for (let start = 0; start < rewards.length; start += groupSize) {
    const group = rewards.slice(start, start + groupSize)
    const mean = group.reduce((a, b) => a + b, 0) / groupSize
    const std = Math.sqrt(group.reduce((a, r) => a + (r - mean) ** 2, 0) / (groupSize - 1))
    for (const r of group) out.push((r - mean) / (std + eps))
  }
  return out
}

/** ρ = π / π_old per token. */
const ratioOf = (logProbs: tf.Tensor, oldLogProbs: tf.Tensor): tf.Tensor => tf.exp(tf.sub(logProbs, oldLogProbs))

/** PPO's clipped surrogate per token (to maximise); `advantages` broadcasts against the log-probs. */
export const clippedSurrogate = (logProbs: tf.Tensor, oldLogProbs: tf.Tensor, advantages: tf.Tensor, epsilon: number): tf.Tensor =>
  tf.tidy(() => {
    const ratio = ratioOf(logProbs, oldLogProbs)
    return tf.minimum(tf.mul(ratio, advantages), tf.mul(tf.clipByValue(ratio, 1 - epsilon, 1 + epsilon), advantages))
  })

/** 1 where clipping holds the token's gradient at zero (ρ beyond 1 ± ε on the side A pushes towards), else 0. */
export const clippedTokens = (logProbs: tf.Tensor, oldLogProbs: tf.Tensor, advantages: tf.Tensor, epsilon: number): tf.Tensor =>
  tf.tidy(() => {
    const ratio = ratioOf(logProbs, oldLogProbs)
    const above = tf.logicalAnd(tf.greater(ratio, 1 + epsilon), tf.greater(advantages, 0))
    const below = tf.logicalAnd(tf.less(ratio, 1 - epsilon), tf.less(advantages, 0))
    return tf.cast(tf.logicalOr(above, below), "float32")
  })

/** The k3 estimator of KL(π ‖ π_ref) per token. */
export const k3Kl = (logProbs: tf.Tensor, refLogProbs: tf.Tensor): tf.Tensor =>
  tf.tidy(() => {
    const delta = tf.sub(refLogProbs, logProbs)
    return tf.sub(tf.sub(tf.exp(delta), delta), 1)
  })

/** Σ values·mask / max(Σ mask, 1): the mean over the tokens that count. */
export const tokenMean = (values: tf.Tensor, mask: tf.Tensor): tf.Scalar =>
  tf.tidy(() => tf.div(tf.sum(tf.mul(values, mask)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar)

export interface GrpoObjectiveOptions {
  /** PPO's ε. */
  readonly clip: number
  /** β, the KL penalty's coefficient. */
  readonly klCoef: number
}

/** −surrogate + β·k3 per token. */
export const grpoTokenLoss = (
  logProbs: tf.Tensor,
  oldLogProbs: tf.Tensor,
  refLogProbs: tf.Tensor,
  advantages: tf.Tensor,
  options: GrpoObjectiveOptions
): tf.Tensor =>
  tf.tidy(() =>
    tf.add(
      tf.neg(clippedSurrogate(logProbs, oldLogProbs, advantages, options.clip)),
      tf.mul(k3Kl(logProbs, refLogProbs), options.klCoef)
    )
  )
