/**
 * Quality gates: whether a pruned-and-tuned model may replace the last accepted one, judged
 * against the original model's metrics.
 */
import type { Gates } from "./Plan.ts"
import type { DatasetScore } from "../io/RunEvent.ts"

const percent = (x: number, digits = 1) => `${(x * 100).toFixed(digits)}%`

/** The gates a model fails (empty when it passes), each as a sentence. */
export const failedGates = (
  gates: Gates,
  metrics: Readonly<Record<string, DatasetScore>>,
  original: Readonly<Record<string, DatasetScore>>
): Array<string> => {
  const failures: Array<string> = []
  for (const [name, base] of Object.entries(original)) {
    const now = metrics[name]
    if (now === undefined) continue
    if (gates.accuracyRetained !== undefined && base.accuracy !== undefined && now.accuracy !== undefined) {
      const floor = gates.accuracyRetained * base.accuracy
      if (!(now.accuracy >= floor)) {
        // The floor gets two decimals: "94.5% is below ... (94.53%)", not "(94.5%)".
        failures.push(`${name} accuracy ${percent(now.accuracy)} is below ${percent(gates.accuracyRetained)} of the original ${percent(base.accuracy)} (${percent(floor, 2)})`)
      }
    }
    if (gates.lossIncrease !== undefined && base.perplexity !== undefined && now.perplexity !== undefined) {
      const increase = Math.log(now.perplexity) - Math.log(base.perplexity)
      if (!(increase <= gates.lossIncrease)) {
        failures.push(`${name} loss rose by ${increase.toFixed(3)} nats (perplexity ${base.perplexity.toFixed(2)} → ${now.perplexity.toFixed(2)}), more than ${gates.lossIncrease}`)
      }
    }
  }
  return failures
}
