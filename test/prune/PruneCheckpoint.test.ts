import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { loadCheckpoint, openLazyCheckpoint } from "../../src/io/CheckpointReader.ts"
import { saveCheckpoint } from "../../src/io/CheckpointWriter.ts"
import type { Dtype } from "../../src/io/Dtype.ts"
import { newHfConfig } from "../../src/io/NewConfig.ts"
import { writeRandomCheckpoint } from "../../src/io/RandomCheckpoint.ts"
import { blockwiseGroupLoss, evaluatePerplexity } from "../../src/eval/Perplexity.ts"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import { uniformConfig } from "../../src/model/ModelConfig.ts"
import { disposeParams, initParams, paramSpecs } from "../../src/model/Params.ts"
import { checkpointSource, residentSource } from "../../src/model/WeightSource.ts"
import { calibrationBatches } from "../../src/prune/Calibration.ts"
import { pruneOnce, type PruneRequest } from "../../src/prune/Prune.ts"
import { pruneCheckpoint } from "../../src/prune/PruneCheckpoint.ts"
import { arith } from "../../src/tasks/Arith.ts"
import { general } from "../../src/tasks/General.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"
import { randomBatches } from "./_support.ts"
import { unlimitedRoom } from "../helpers/room.ts"

beforeAll(() => useBackend("wasm"))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-prune-checkpoint-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const folderBytes = (dir: string) =>
  Effect.promise(async () => {
    const names = (await readdir(dir)).sort()
    return Object.fromEntries(await Promise.all(names.map(async (n) => [n, Buffer.from(await readFile(join(dir, n))).toString("base64")])))
  })

const qwen = tinyConfig({ architecture: "qwen2", vocabSize: 41, tieWordEmbeddings: true, qkvBias: true }, { numLayers: 3 })
const llama = tinyConfig({ vocabSize: 41, mlpBias: true, qkvBias: true, outputBias: true }, { numLayers: 3 })
const data = { task: randomBatches(41, { sequences: 8, batchSize: 4, minLen: 3, maxLen: 10, seed: 3 }) }

const cases: Array<[string, ModelConfig, PruneRequest, Dtype]> = [
  ["neurons (wanda) of a tied Qwen2 model, BF16", qwen, { unit: "neurons", scorer: "wanda", target: { kind: "fraction", keep: 0.5 } }, "BF16"],
  ["neurons (taylor) of a Llama model with every bias, F32", llama, { unit: "neurons", scorer: "taylor", target: { kind: "fraction", keep: 0.5 } }, "F32"],
  ["key/value groups of a Qwen2 model, BF16", qwen, { unit: "heads", scorer: "contribution", target: { kind: "fraction", keep: 0.5 } }, "BF16"],
  ["key/value groups of a Llama model with biases, F32", llama, { unit: "heads", scorer: "contribution", target: { kind: "fraction", keep: 0.5 } }, "F32"],
  ["layers (skip-loss) of a Llama model, BF16", llama, { unit: "layers", scorer: "skip-loss", target: { kind: "fraction", keep: 0.67 } }, "BF16"],
  ["neurons with global allocation, F32", qwen, { unit: "neurons", scorer: "activation", target: { kind: "fraction", keep: 0.5 }, allocation: "global" }, "F32"]
]

describe("pruning a checkpoint without loading it", () => {
  it.effect.each(cases)("%s writes the tensors and config.json that loading, pruning and saving in memory writes", ([, config, request, dtype]) =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const params = initParams(config, 11, 0.3)
      yield* saveCheckpoint(join(dir, "original"), {
        config,
        hfConfig: newHfConfig(config, { bos: 1, eos: 2, pad: 0 }),
        params,
        dtype,
        maxShardBytes: 6000
      })
      disposeParams(config, params)

      const loaded = yield* loadCheckpoint(join(dir, "original"))
      const inMemory = yield* pruneOnce(loaded.config, loaded.params, unlimitedRoom, request, data)
      yield* saveCheckpoint(join(dir, "in-memory"), {
        config: inMemory.model.config,
        hfConfig: loaded.hfConfig,
        params: inMemory.model.params,
        dtype: loaded.dtype,
        maxShardBytes: 6000
      })
      disposeParams(inMemory.model.config, inMemory.model.params)

      const before = numTensors()
      const open = yield* openLazyCheckpoint(join(dir, "original"))
      const streamed = yield* pruneCheckpoint(open, unlimitedRoom, join(dir, "streamed"), request, data, {})
      expect(numTensors()).toBe(before)
      expect(streamed.plan).toEqual(inMemory.plan)
      expect(streamed.after).toEqual(inMemory.after)
      // The streamed save uses transformers' default shard limit, the in-memory one a small limit: compare tensors.
      const reloaded = yield* loadCheckpoint(join(dir, "streamed"))
      const reference = yield* loadCheckpoint(join(dir, "in-memory"))
      expect(reloaded.config).toEqual(reference.config)
      expect(reloaded.dtype).toBe(dtype)
      for (const spec of paramSpecs(reloaded.config)) {
        expect(Array.from(spec.get(reloaded.params).dataSync())).toEqual(Array.from(spec.get(reference.params).dataSync()))
      }
      disposeParams(reloaded.config, reloaded.params)
      disposeParams(reference.config, reference.params)
      const streamedFiles = yield* folderBytes(join(dir, "streamed"))
      expect(streamedFiles["config.json"]).toBe((yield* folderBytes(join(dir, "in-memory")))["config.json"])
    }).pipe(Effect.scoped))
})

describe("a mid-size bf16 checkpoint (about 6M parameters, sharded, char tokenizer)", () => {
  it.effect("goes through score → prune → save → reload → eval, and block-by-block perplexity equals the in-memory one", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const tokenizer = baseTokenizer()
      const config: ModelConfig = uniformConfig({
        architecture: "qwen2",
        vocabSize: 4096,
        hiddenSize: 192,
        headDim: 32,
        rmsNormEps: 1e-6,
        ropeTheta: 1e6,
        maxPositionEmbeddings: 512,
        tieWordEmbeddings: true,
        qkvBias: true,
        outputBias: false,
        mlpBias: false
      }, { numLayers: 6, intermediateSize: 1024, numHeads: 6, numKeyValueHeads: 2 })
      yield* writeRandomCheckpoint(join(dir, "mid"), { ...newHfConfig(config, { bos: 1, eos: 2, pad: 0 }), torch_dtype: "bfloat16" }, {
        maxShardBytes: 4_000_000,
        extraFiles: Object.entries(tokenizer.files()).map(([name, content]) => ({ name, content }))
      })
      const calibration = calibrationBatches(tokenizer, arith({}, 1).take("calibration", 16), { batchSize: 8, maxSeqLen: 256 })
      const open = yield* openLazyCheckpoint(join(dir, "mid"))
      expect(open.files.weights.length).toBeGreaterThan(1)
      const result = yield* pruneCheckpoint(
        open,
        unlimitedRoom,
        join(dir, "pruned"),
        { unit: "neurons", scorer: "wanda", target: { kind: "fraction", keep: 0.5 } },
        { task: calibration }
      )
      expect(result.config.layers.every((l) => l.intermediateSize === 512)).toBe(true)
      const reloaded = yield* loadCheckpoint(join(dir, "pruned"))
      expect(reloaded.dtype).toBe("BF16")
      expect(reloaded.files.tokenizer.length).toBeGreaterThan(0)
      const texts = general({}, 1).take("test", 12)
      const options = { batchSize: 4, maxSeqLen: 256 }
      const D = reloaded.config.hiddenSize
      const inMemory = yield* evaluatePerplexity(blockwiseGroupLoss(residentSource(reloaded.config, reloaded.params, unlimitedRoom)), D, tokenizer, texts, options)
      const lazy = yield* evaluatePerplexity(blockwiseGroupLoss(checkpointSource(yield* openLazyCheckpoint(join(dir, "pruned")), unlimitedRoom)), D, tokenizer, texts, options)
      expect(Number.isFinite(lazy.perplexity)).toBe(true)
      expect(Math.abs(lazy.meanLoss - inMemory.meanLoss)).toBeLessThan(1e-5)
      disposeParams(reloaded.config, reloaded.params)
    }).pipe(Effect.scoped))
})
