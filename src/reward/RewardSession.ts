/**
 * A learned reward model's forward pass on ONNX Runtime: one session on the decoder graph with
 * the score head (DecoderGraph.ts), opened once on the model's weights (which never change) and
 * kept until the scope closes. It returns the score at every position of the padded batch; the
 * scorer reads each row's at its pool index, as tfjs's pass does.
 */
import { Effect } from "effect"
import { scoreWeightName } from "../onnx/DecoderGraph.ts"
import { openGraphSession } from "../onnx/GraphSession.ts"
import { readFloats } from "../model/Read.ts"
import { modelWeights } from "../onnx/ModelSession.ts"
import { runScores } from "../onnx/OrtDecoder.ts"
import type { RewardScorer } from "./ClassifierReward.ts"
import type { RewardCheckpoint } from "./RewardCheckpoint.ts"

export const openOrtRewardScorer = (model: RewardCheckpoint) =>
  Effect.gen(function*() {
    const decoder = modelWeights(model)
    const session = yield* openGraphSession(
      model.config,
      (name) => (name === scoreWeightName ? readFloats(model.head) : decoder(name)),
      { head: "score" }
    )
    const scorer: RewardScorer = (rows, read) =>
      Effect.promise(async () => {
        const scores = await runScores(session, model.config, rows)
        return read.map((position) => scores[position])
      })
    return scorer
  })
