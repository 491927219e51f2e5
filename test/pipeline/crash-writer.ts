/**
 * Child process for Crash.test.ts: accepts checkpoint after checkpoint into a run folder as
 * fast as it can (stage, manifest, pointer), until it is killed with SIGKILL.
 */
import { Effect } from "effect"
import { selectBackend } from "../../src/compute/Backend.ts"
import { newHfConfig } from "../../src/io/NewConfig.ts"
import { uniformConfig } from "../../src/model/ModelConfig.ts"
import { initParams } from "../../src/model/Params.ts"
import { RunStore } from "../../src/services/RunStore.ts"

const dir = process.argv[2]
const config = uniformConfig({
  architecture: "llama", vocabSize: 64, hiddenSize: 32, headDim: 8, rmsNormEps: 1e-5, ropeTheta: 10000,
  maxPositionEmbeddings: 64, tieWordEmbeddings: false, qkvBias: false, outputBias: false, mlpBias: false
}, { numLayers: 4, intermediateSize: 256, numHeads: 4, numKeyValueHeads: 2 })

await Effect.runPromise(Effect.gen(function*() {
  yield* selectBackend("cpu")
  const store = yield* RunStore
  const template = { hfConfig: newHfConfig(config, { bos: 1, eos: 2, pad: 0 }), dtype: "F32" as const, extraFiles: [] }
  const accepted = (yield* store.accepted).get("ptl")
  const first = accepted !== undefined ? accepted.iteration + 1 : 0
  for (let i = first; ; i++) {
    const params = initParams(config, i)
    const stage = yield* store.saveStage(`ptl-${String(i).padStart(3, "0")}`, { ...template, config, params })
    yield* store.markAccepted({ stage, iteration: i, strategy: "ptl" })
    if (i === first + 1) process.stdout.write("ready\n") // two checkpoints of this process are in
  }
}).pipe(Effect.provide(RunStore.layerFolder(dir))))
