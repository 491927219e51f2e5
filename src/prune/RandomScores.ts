/**
 * The control scorer: uniform random scores from a seeded generator, for any unit. Any scorer
 * worth using must beat it; the same seed gives the same ranking on every machine.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import { Rng } from "../model/Rng.ts"
import type { HeadScores, LayerScores, NeuronScores, Unit } from "./Scores.ts"

const draw = (rng: Rng, n: number) => Float64Array.from({ length: n }, () => rng.uniform())

export function randomScores(config: ModelConfig, unit: "neurons", seed: number): NeuronScores
export function randomScores(config: ModelConfig, unit: "heads", seed: number): HeadScores
export function randomScores(config: ModelConfig, unit: "layers", seed: number): LayerScores
export function randomScores(config: ModelConfig, unit: Unit, seed: number): NeuronScores | HeadScores | LayerScores
export function randomScores(config: ModelConfig, unit: Unit, seed: number): NeuronScores | HeadScores | LayerScores {
  const rng = Rng.seeded(seed)
  const base = { scorer: "random" as const, samples: 0, tokens: 0 }
  switch (unit) {
    case "neurons":
      return { ...base, unit, perLayer: config.layers.map((l) => draw(rng, l.intermediateSize)) }
    case "heads":
      return { ...base, unit, perLayer: config.layers.map((l) => draw(rng, l.numKeyValueHeads)) }
    case "layers":
      return { ...base, unit, perBlock: draw(rng, config.layers.length) }
  }
}
