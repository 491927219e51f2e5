/**
 * Choosing the next token from a row of logits: greedy (temperature 0), or temperature with
 * nucleus (top-p) sampling from a seeded generator. Runs in JavaScript on one row at a time;
 * the rows are small ([V]) next to the forward pass that produced them.
 */
import type { Rng } from "./Rng.ts"

export interface SamplingOptions {
  /** 0 means greedy. */
  readonly temperature: number
  /** Keep the smallest set of tokens whose probability reaches topP; 1 keeps all. */
  readonly topP: number
}

export const greedy: SamplingOptions = { temperature: 0, topP: 1 }

/** Index of the largest logit; the first one on ties, as torch.argmax does. */
export const argmax = (logits: ArrayLike<number>): number => {
  let best = 0
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i
  return best
}

export const sampleToken = (logits: ArrayLike<number>, options: SamplingOptions, rng: Rng): number => {
  if (options.temperature <= 0) return argmax(logits)
  const n = logits.length
  let max = -Infinity
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i])
  const probs = new Float64Array(n)
  let total = 0
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((logits[i] - max) / options.temperature)
    total += probs[i]
  }
  // Candidates by descending probability (index breaks ties so the order is deterministic).
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b)
  const keep: Array<number> = []
  let mass = 0
  for (const i of order) {
    keep.push(i)
    mass += probs[i] / total
    if (mass >= options.topP) break
  }
  const keptMass = keep.reduce((sum, i) => sum + probs[i], 0)
  let u = rng.uniform() * keptMass
  for (const i of keep) {
    u -= probs[i]
    if (u < 0) return i
  }
  return keep[keep.length - 1]
}
