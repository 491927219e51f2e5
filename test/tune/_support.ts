/**
 * Setups the tuning tests share (and the webgpu parity test reuses): a toy SFT task with its
 * train options, pseudo-random token batches, a fixed GRPO rollout batch, and a tuner's context.
 */
import { Effect } from "effect"
import type { TokenBatch } from "../../src/model/Gradients.ts"
import type { Model } from "../../src/model/Model.ts"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import type { Params } from "../../src/model/Params.ts"
import { Rng } from "../../src/model/Rng.ts"
import { taskDataset } from "../../src/services/DatasetsInMemory.ts"
import { builtinTask } from "../../src/tasks/Builtin.ts"
import type { TokenizedExample } from "../../src/tasks/Encode.ts"
import { defaultAdamW } from "../../src/tune/AdamW.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { buildRolloutBatch, type RolloutBatch, sequenceLogProbs } from "../../src/tune/GrpoLoss.ts"
import { groupAdvantages } from "../../src/tune/GrpoObjective.ts"
import type { Rollout } from "../../src/tune/Rollouts.ts"
import { warmupCosine } from "../../src/tune/Schedule.ts"
import type { TrainOptions } from "../../src/tune/Trainer.ts"
import type { TuneContext } from "../../src/tune/Tuner.ts"
import { unlimitedRoom } from "../helpers/room.ts"

// A toy task: each sequence counts up by one from a random start (mod 17).
export const toyData: Array<TokenizedExample> = Array.from({ length: 64 }, (_, i) => ({
  ids: Array.from({ length: 8 }, (_, t) => (i * 5 + t) % 17),
  promptLength: 1
}))

export const toyOptions: TrainOptions = {
  schedule: warmupCosine(1e-2, 40),
  optimizer: defaultAdamW,
  maxGradNorm: 1,
  batchSize: 8,
  accumulation: 1,
  seqLen: 8,
  padId: 0,
  promptMasked: true
}

/** Rows of pseudo-random tokens; the first two targets of each row are a "prompt" that does not count. */
export const batchOf = (vocabSize: number, rows: number, seqLen: number, seed: number, masked = true): TokenBatch => {
  const rng = Rng.seeded(seed)
  return {
    ids: Int32Array.from({ length: rows * seqLen }, () => rng.int(vocabSize)),
    ...(masked ? { weights: Float32Array.from({ length: rows * (seqLen - 1) }, (_, i) => (i % (seqLen - 1) < 2 ? 0 : 1)) } : {}),
    batchSize: rows,
    seqLen
  }
}

export const grpoPrompts = [[1, 5, 9], [1, 7, 3, 12, 4]]

/** A fixed rollout batch: hand-picked completions of unequal length, rollout and reference log-probs offset from the policy's. */
export const fixedRolloutBatch = async (config: ModelConfig, params: Params): Promise<{ batch: RolloutBatch; ref: Float32Array }> => {
  const completions = [[4, 6, 2], [8], [3, 3, 9, 2], [10, 11], [5, 2], [13, 14, 15]]
  const rollouts: Array<Rollout> = completions.map((completion, i) => ({
    prompt: Math.floor(i / 3),
    completion,
    logProbs: completion.map(() => 0)
  }))
  const advantages = groupAdvantages([1, 0, 0.5, 0.2, 0.9, 0.1], 3)
  const draft = buildRolloutBatch(grpoPrompts, rollouts, advantages, 0)
  const current = await Effect.runPromise(sequenceLogProbs(config, params, draft, 1))
  // Ratios e^{+0.5}, 1 and e^{-0.5}: clipped on one side, inside, clipped on the other; none near 1 ± ε.
  const offsets = [0.5, 0, -0.5]
  const old = current.map((lp, i) => (draft.mask[i] === 1 ? lp - offsets[i % 3] : 0))
  const ref = current.map((lp, i) => (draft.mask[i] === 1 ? lp + 0.3 * Math.sin(i) : 0))
  return { batch: { ...draft, oldLogProbs: Float32Array.from(old) }, ref: Float32Array.from(ref) }
}

/** A tuner's context: the first iteration, tuning on the built-in arith task with the bundled tokenizer. */
export const arithContext = (original: Model, steps: number, seed: number): TuneContext => ({
  iteration: 1,
  steps,
  seed,
  tokenizer: baseTokenizer(),
  datasets: [taskDataset(builtinTask({ task: "arith" }))],
  chunk: 1,
  original,
  room: unlimitedRoom
})
