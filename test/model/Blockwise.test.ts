import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { loadCheckpoint, openLazyCheckpoint } from "../../src/io/CheckpointReader.ts"
import { saveCheckpoint } from "../../src/io/CheckpointWriter.ts"
import type { Dtype } from "../../src/io/Dtype.ts"
import { newHfConfig } from "../../src/io/NewConfig.ts"
import { blockActivationBytes, blockwiseLoss, ensureBlockFits, finalNorm, lossBatch, runBlocks } from "../../src/model/Blockwise.ts"
import { generateBlockwise } from "../../src/model/BlockwiseGenerate.ts"
import { chunkedNll, chunkedNllGradient } from "../../src/model/ChunkedLoss.ts"
import { deviceRoom } from "../../src/model/DeviceRoom.ts"
import { generate } from "../../src/model/Generate.ts"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import { disposeParams, initParams, type Params, paramSpecs } from "../../src/model/Params.ts"
import { forward, nextTokenLoss, rmsNorm } from "../../src/model/Transformer.ts"
import { checkpointSource, residentSource } from "../../src/model/WeightSource.ts"
import { idsTensor, tokenMask } from "../../src/prune/Calibration.ts"
import { activationScores } from "../../src/prune/NeuronScorers.ts"
import { rankAscending } from "../../src/prune/Scores.ts"
import { maxAbsDiff, numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"
import { randomBatches } from "../prune/_support.ts"
import { unlimitedRoom } from "../helpers/room.ts"

beforeAll(() => useBackend("cpu"))

const tied = tinyConfig({ architecture: "qwen2", vocabSize: 53, tieWordEmbeddings: true, qkvBias: true }, { numLayers: 3 })
const untied = tinyConfig({ vocabSize: 53 }, { numLayers: 3 })
const batches = randomBatches(53, { sequences: 10, batchSize: 4, minLen: 3, maxLen: 12, seed: 4 })

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-blockwise-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** Per-row −log p(target) from the whole model's full logits, the reference. */
const referenceNll = (config: ModelConfig, params: Params, batch: (typeof batches)[number]): Float32Array =>
  tf.tidy(() => {
    const lb = lossBatch(batch)
    const logits = tf.reshape(forward(config, params, tf.tensor2d(lb.ids, [lb.batchSize, lb.seqLen], "int32")).logits, [-1, config.vocabSize])
    const picked = tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.tensor1d(lb.targets, "int32"), config.vocabSize)), 1)
    return tf.neg(picked).dataSync() as Float32Array
  })

describe.each([["tied (Qwen2)", tied], ["untied (Llama)", untied]] as const)("chunked loss, %s", (_, config) => {
  it("per-row losses over vocabulary chunks equal the full log-softmax (1e-5), for every chunk size", async () => {
    const params = initParams(config, 3, 0.3)
    const source = residentSource(config, params, unlimitedRoom)
    const before = numTensors()
    for (const batch of batches) {
      const lb = lossBatch(batch)
      const reference = referenceNll(config, params, batch)
      const finals = await Effect.runPromise(Effect.flatMap(runBlocks(source, [lb]), (h) => finalNorm(source, h)))
      for (const chunk of [1, 7, 16, 53]) {
        const nll = await Effect.runPromise(chunkedNll(source, finals[0], lb.targets, chunk))
        expect(maxAbsDiff(nll, reference)).toBeLessThan(1e-5)
      }
      tf.dispose(finals)
    }
    expect(numTensors()).toBe(before)
    disposeParams(config, params)
  })

  it("the block-by-block mean loss equals nextTokenLoss (1e-5)", async () => {
    const params = initParams(config, 5, 0.3)
    const loss = await Effect.runPromise(blockwiseLoss(residentSource(config, params, unlimitedRoom), batches.map(lossBatch)))
    batches.forEach((batch, b) => {
      const whole = tf.tidy(() =>
        nextTokenLoss(config, params, idsTensor(batch), tf.tensor2d(batch.weights!, [batch.batchSize, batch.seqLen - 1])).dataSync()[0]
      )
      expect(Math.abs(loss.weightedSums[b] / loss.counts[b] - whole)).toBeLessThan(1e-5)
    })
    disposeParams(config, params)
  })

  it("the chunked gradient with respect to the final states equals autodiff of the full loss (1e-5)", async () => {
    const params = initParams(config, 6, 0.3)
    const source = residentSource(config, params, unlimitedRoom)
    const lb = lossBatch(batches[0])
    const [final] = await Effect.runPromise(Effect.flatMap(runBlocks(source, [lb]), (h) => finalNorm(source, h)))
    const total = lb.weights.reduce((a, b) => a + b, 0)
    const coefficients = lb.weights.map((w) => w / total)
    const { loss, gradient } = await Effect.runPromise(chunkedNllGradient(source, final, lb.targets, coefficients, 9))
    const reference = tf.tidy(() => {
      const f = (x: tf.Tensor) => {
        const head = params.lmHead === undefined ? tf.transpose(params.embed) : params.lmHead.w
        const logp = tf.logSoftmax(tf.matMul(x as tf.Tensor2D, head as tf.Tensor2D))
        const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(lb.targets, "int32"), config.vocabSize)), 1)
        return tf.neg(tf.sum(tf.mul(picked, tf.tensor1d(coefficients))))
      }
      const { value, grad } = tf.valueAndGrad(f)(final)
      return { value: value.dataSync()[0], grad: grad.dataSync() }
    })
    expect(Math.abs(loss - reference.value)).toBeLessThan(1e-5)
    expect(maxAbsDiff(gradient.dataSync(), reference.grad)).toBeLessThan(1e-5)
    tf.dispose([final, gradient])
    disposeParams(config, params)
  })
})

describe.each(["F32", "BF16"] as const)("a checkpoint read lazily (%s)", (dtype: Dtype) => {
  const config = tied
  const write = (dir: string) =>
    Effect.gen(function*() {
      const params = initParams(config, 7, 0.3)
      yield* saveCheckpoint(dir, { config, hfConfig: newHfConfig(config, { bos: 1, eos: 2, pad: 0 }), params, dtype, maxShardBytes: 4000 })
      disposeParams(config, params)
    })

  it.effect("reads every tensor, and rows of the embedding, exactly as the whole-tensor load", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "ckpt")
      yield* write(dir)
      const loaded = yield* loadCheckpoint(dir)
      const open = yield* openLazyCheckpoint(dir)
      expect(open.files.weights.length).toBeGreaterThan(1)
      for (const spec of paramSpecs(config)) {
        const lazy = yield* open.readInternal(spec.name)
        expect(Array.from(lazy)).toEqual(Array.from(spec.get(loaded.params).dataSync()))
      }
      const embed = yield* open.read("model.embed_tokens.weight")
      const rows = yield* open.readRows("model.embed_tokens.weight", 3, 4)
      expect(Array.from(rows)).toEqual(Array.from(embed.subarray(3 * config.hiddenSize, 7 * config.hiddenSize)))
      disposeParams(config, loaded.params)
    }).pipe(Effect.scoped))

  it.effect("block-by-block scoring from the shards ranks neurons exactly as whole-model scoring, with one block resident", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "ckpt")
      yield* write(dir)
      const loaded = yield* loadCheckpoint(dir)
      // Whole model: every batch through the full forward, mean |activation| over real tokens.
      const sums = config.layers.map((l) => new Float64Array(l.intermediateSize))
      let tokens = 0
      for (const batch of batches) {
        const mask = tokenMask(batch)
        tf.tidy(() => {
          forward(config, loaded.params, idsTensor(batch), {
            observe: (i, name, act) => {
              if (name !== "mlp.act") return
              const s = tf.matMul(mask, tf.abs(act)).dataSync()
              for (let j = 0; j < s.length; j++) sums[i][j] += s[j]
            }
          })
        })
        mask.dispose()
        tokens += batch.lengths.reduce((a, b) => a + b, 0)
      }
      const open = yield* openLazyCheckpoint(dir)
      const before = numTensors()
      let peak = 0
      const scores = yield* activationScores(checkpointSource(open, unlimitedRoom), batches, { onBlock: () => (peak = Math.max(peak, numTensors())) })
      expect(numTensors()).toBe(before)
      scores.perLayer.forEach((values, i) => {
        const whole = sums[i].map((s) => s / tokens)
        expect(rankAscending(values)).toEqual(rankAscending(whole))
        expect(maxAbsDiff(values, whole)).toBeLessThan(1e-5)
      })
      // After each block only per-batch tensors remain (hidden states, token mask, two rotary
      // tables): no block's weights (12 tensors each here) stay behind.
      expect(peak - before).toBe(4 * batches.length)
      disposeParams(config, loaded.params)
    }).pipe(Effect.scoped))
})

describe("block-by-block decoding", () => {
  it("generates what the whole model generates, greedy and sampled, without leaks", async () => {
    const config = tinyConfig({ vocabSize: 53, ropeScaling: { kind: "llama3", factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 } })
    const params = initParams(config, 9, 0.5)
    const before = numTensors()
    for (const options of [{ temperature: 0, topP: 1 }, { temperature: 1, topP: 0.9, seed: 3 }]) {
      const prompt = [3, 17, 5, 40, 2]
      const whole = (await Effect.runPromise(generate(config, params, [prompt], { ...options, maxNewTokens: 6 })))[0]
      const blockwise = await Effect.runPromise(generateBlockwise(residentSource(config, params, unlimitedRoom), prompt, { ...options, maxNewTokens: 6 }))
      expect(blockwise).toEqual(whole)
    }
    expect(numTensors()).toBe(before)
    disposeParams(config, params)
  })
})

describe("memory checks", () => {
  it("a block whose activations cannot fit is refused before anything is allocated, naming the batch size", () => {
    const before = numTensors()
    const huge = [{ ids: new Int32Array(0), batchSize: 1 << 16, seqLen: 1 << 14 }]
    const error = Effect.runSync(Effect.flip(ensureBlockFits(deviceRoom("test memory", 4 * 2 ** 30), tied, 0, huge)))
    expect(error._tag).toBe("MemoryBudgetExceeded")
    expect(error.message).toContain("--batch-size")
    expect(numTensors()).toBe(before)
  })

  it("the activation estimate grows linearly in the batch and quadratically in the sequence (attention)", () => {
    const b1 = blockActivationBytes(tied, 0, 1, 64)
    expect(blockActivationBytes(tied, 0, 4, 64)).toBeCloseTo(4 * b1, -2)
    expect(blockActivationBytes(tied, 0, 1, 128)).toBeGreaterThan(2 * b1)
  })
})

it("rmsNorm is what the final norm applies", () => {
  // finalNorm disposes its inputs and applies the model's final RMSNorm.
  const params = initParams(tied, 8, 0.3)
  const h = tf.randomNormal([5, tied.hiddenSize]) as tf.Tensor2D
  const expected = tf.tidy(() => rmsNorm(h, params.norm, tied.rmsNormEps).dataSync())
  const [out] = Effect.runSync(finalNorm(residentSource(tied, params, unlimitedRoom), [tf.clone(h)]))
  expect(maxAbsDiff(out.dataSync(), expected)).toBe(0)
  tf.dispose([h, out])
  disposeParams(tied, params)
})
