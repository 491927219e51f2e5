/**
 * A weighted sum of rewards, as a plan's `reward:` list describes it
 * (`[{ rule: arith, weight: 1 }, { model: path/to/rm, weight: 0.5 }]`). Its error and
 * requirement types are the unions of its components', so a component with its own error type
 * keeps it visible to the code that uses the sum.
 *
 * Parts: each component's total under its name, and the component's own parts under
 * `name.part` (e.g. `arith`, `arith.correct`, `arith.format`, and a learned model's folder name),
 * so the metrics say which component moved. Repeated names get `#2`, `#3`, ... appended.
 */
import { Effect } from "effect"
import { makeReward, type Reward } from "./Reward.ts"

export interface WeightedComponent<E = never, R = never> {
  readonly reward: Reward<E, R>
  readonly weight: number
}

type ErrorOf<C> = C extends WeightedComponent<infer E, infer _R> ? E : never
type RequirementOf<C> = C extends WeightedComponent<infer _E, infer R> ? R : never

/** Σ weight · reward over the components (at least one). */
export const weightedSum = <const C extends ReadonlyArray<WeightedComponent<any, any>>>(
  components: C,
  name = "reward"
): Reward<ErrorOf<C[number]>, RequirementOf<C[number]>> => {
  if (components.length === 0) throw new RangeError("weightedSum needs at least one reward")
  const seen = new Map<string, number>()
  const labels = components.map(({ reward }) => {
    const count = (seen.get(reward.name) ?? 0) + 1
    seen.set(reward.name, count)
    return count === 1 ? reward.name : `${reward.name}#${count}`
  })
  return makeReward(name, (prompts, completions) =>
    Effect.gen(function*() {
      const total = new Array<number>(completions.length).fill(0)
      const parts: Record<string, ReadonlyArray<number>> = {}
      for (const [i, { reward, weight }] of components.entries()) {
        const scores = yield* reward.scoreParts(prompts, completions)
        scores.total.forEach((value, j) => (total[j] += weight * value))
        parts[labels[i]] = scores.total
        for (const [part, values] of Object.entries(scores.parts)) parts[`${labels[i]}.${part}`] = values
      }
      return { total, parts }
    }))
}
