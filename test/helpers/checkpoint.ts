/**
 * A tiny Llama checkpoint with the built-in tasks' character tokenizer, written the way
 * `simmer train-base` writes the bundled model: for tests of everything that starts from a
 * checkpoint folder (pruning CLI, the loop, resume).
 */
import { Effect } from "effect"
import { saveCheckpoint } from "../../src/io/CheckpointWriter.ts"
import { newHfConfig } from "../../src/io/NewConfig.ts"
import { disposeParams, initParams } from "../../src/model/Params.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { tinyConfig } from "./backend.ts"

export const writeTinyCheckpoint = (dir: string, seed = 1, shape = { hidden: 16, layers: 2, heads: 4, kvHeads: 2, intermediate: 32 }) =>
  Effect.gen(function*() {
    const tokenizer = baseTokenizer()
    const config = tinyConfig(
      { vocabSize: tokenizer.vocabSize, hiddenSize: shape.hidden, headDim: shape.hidden / shape.heads, maxPositionEmbeddings: 128 },
      { numLayers: shape.layers, intermediateSize: shape.intermediate, numHeads: shape.heads, numKeyValueHeads: shape.kvHeads }
    )
    const params = initParams(config, seed, 0.2)
    yield* saveCheckpoint(dir, {
      config,
      hfConfig: newHfConfig(config, { bos: tokenizer.bosId, eos: tokenizer.eosId, pad: tokenizer.padId }),
      params,
      dtype: "F32",
      extraFiles: Object.entries(tokenizer.files()).map(([name, content]) => ({ name, content }))
    })
    disposeParams(config, params)
    return config
  })
