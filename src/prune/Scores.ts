/**
 * Importance scores: what every scorer returns and what selection reads.
 *
 * A score is a number per prunable unit, higher meaning more important; selection removes the
 * lowest first, ties in index order (the lower index goes first). Neurons and key/value groups
 * are scored per layer (one vector per layer, as long as that layer's width, since layers may
 * differ); decoder blocks get one vector over the whole model. Scores are plain Float64Arrays,
 * accumulated in JS while calibration batches stream through the model, so their memory does not
 * grow with the number of samples.
 */

/** What pruning removes: MLP neurons, key/value groups (a KV head with its query heads), decoder blocks. */
export type Unit = "neurons" | "heads" | "layers"

export const units: ReadonlyArray<Unit> = ["neurons", "heads", "layers"]

/** The scorers of each unit by name; Scorers.ts's registry holds what each reads and runs. */
export interface ScorerNames {
  readonly neurons: "activation" | "contrastive" | "taylor" | "wanda" | "random"
  readonly heads: "contribution" | "random"
  readonly layers: "block-influence" | "skip-loss" | "random"
}
export type NeuronScorer = ScorerNames["neurons"]
export type HeadScorer = ScorerNames["heads"]
export type LayerScorer = ScorerNames["layers"]

interface ScoresBase {
  /** Calibration sequences that contributed. */
  readonly samples: number
  /** Calibration tokens (positions) that contributed. */
  readonly tokens: number
  /** Scorer-specific intermediate vectors (e.g. contrastive's hit frequencies), per layer. */
  readonly details?: Readonly<Record<string, ReadonlyArray<Float64Array>>>
}

/** One score per MLP neuron (input of down_proj), per layer. */
export interface NeuronScores extends ScoresBase {
  readonly unit: "neurons"
  readonly scorer: NeuronScorer
  readonly perLayer: ReadonlyArray<Float64Array>
}

/** One score per key/value group, per layer. */
export interface HeadScores extends ScoresBase {
  readonly unit: "heads"
  readonly scorer: HeadScorer
  readonly perLayer: ReadonlyArray<Float64Array>
}

/** One score per decoder block. */
export interface LayerScores extends ScoresBase {
  readonly unit: "layers"
  readonly scorer: LayerScorer
  readonly perBlock: Float64Array
}

export type Scores = NeuronScores | HeadScores | LayerScores

/** The vectors selection ranks: one per layer for neurons and heads, one for the whole model for layers. */
export const scoreVectors = (scores: Scores): ReadonlyArray<Float64Array> =>
  scores.unit === "layers" ? [scores.perBlock] : scores.perLayer

/**
 * Unit indices from least to most important: ascending score, ties by ascending index. NaN (a
 * model that produced non-finite activations) counts as least important.
 */
export const rankAscending = (values: ArrayLike<number>): Array<number> => {
  const key = (i: number) => (Number.isNaN(values[i]) ? -Infinity : values[i])
  return Array.from({ length: values.length }, (_, i) => i).sort((a, b) => key(a) - key(b) || a - b)
}

export interface VectorSummary {
  readonly count: number
  readonly min: number
  readonly median: number
  readonly max: number
  /** The least important units, first to go: index and score. */
  readonly lowest: ReadonlyArray<{ readonly index: number; readonly score: number }>
}

export const summarizeVector = (values: Float64Array, lowest = 5): VectorSummary => {
  const order = rankAscending(values)
  const at = (k: number) => values[order[k]]
  const n = values.length
  return {
    count: n,
    min: n === 0 ? NaN : at(0),
    median: n === 0 ? NaN : n % 2 === 1 ? at((n - 1) / 2) : (at(n / 2 - 1) + at(n / 2)) / 2,
    max: n === 0 ? NaN : at(n - 1),
    lowest: order.slice(0, lowest).map((index) => ({ index, score: values[index] }))
  }
}
