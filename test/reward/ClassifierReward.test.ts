/**
 * Learned reward models against transformers itself: test/fixtures/hf-llama-reward-f32 is a
 * LlamaForSequenceClassification (num_labels 1) written by transformers with the scores its
 * own forward computes, a right-padded batch included. Malformed reward checkpoints are
 * derived from it.
 */
import { describe, expect, it } from "@effect/vitest"
import { chmod, cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { beforeAll } from "vitest"
import { disposeCheckpoint, loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { readSafetensors, writeSafetensors } from "../../src/io/Safetensors.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { classifierReward, poolIndex, scoreIds } from "../../src/reward/ClassifierReward.ts"
import { disposeRewardCheckpoint, loadRewardCheckpoint, type RewardCheckpoint } from "../../src/reward/RewardCheckpoint.ts"
import { openOrtRewardScorer } from "../../src/reward/RewardSession.ts"
import * as tf from "@tensorflow/tfjs"
import { biasedQwen2 } from "../onnx/_support.ts"
import type { BackendName } from "../../src/compute/Backend.ts"
import { RewardModel } from "../../src/services/RewardModel.ts"
import { currentCompute, maxAbsDiff, numTensors, useBackend } from "../helpers/backend.ts"

const fixture = join(import.meta.dirname, "../fixtures/hf-llama-reward-f32")

interface Reference {
  readonly inputs: ReadonlyArray<{ name: string; input_ids: Array<number>; score: number }>
  readonly padded_batch: { input_ids: Array<Array<number>>; scores: Array<number> }
}
const reference: Reference = JSON.parse(await readFile(join(fixture, "reference.json"), "utf8"))

/** A writable copy of the fixture, removed with the test's scope. */
const fixtureCopy = Effect.acquireRelease(
  Effect.promise(async () => {
    const root = await mkdtemp(join(tmpdir(), "simmer-reward-"))
    const dir = join(root, "rm")
    await cp(fixture, dir, { recursive: true })
    await chmod(dir, 0o755)
    for (const f of await readdir(dir)) await chmod(join(dir, f), 0o644)
    return dir
  }),
  (dir) => Effect.promise(() => rm(join(dir, ".."), { recursive: true, force: true }))
)

/** A temporary folder (removed with the test's scope) holding the fixture with a tokenizer at each of `folders`. */
const rewardFolders = (folders: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const root = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-reward-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    )
    for (const folder of folders) {
      yield* Effect.promise(() => cp(fixture, join(root, folder), { recursive: true }))
      yield* Effect.promise(() => cp(join(import.meta.dirname, "../../models/base/tokenizer.json"), join(root, folder, "tokenizer.json")))
    }
    return root
  })

const editConfig = (dir: string, edit: (config: Record<string, unknown>) => void) =>
  Effect.promise(async () => {
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"))
    edit(config)
    await writeFile(join(dir, "config.json"), JSON.stringify(config))
  })

describe.each(["cpu", "wasm", "webgpu"] as const)("a transformers reward model on %s", (backend: BackendName) => {
  beforeAll(() => useBackend(backend))

  it.effect("scores every reference input to 1e-5, alone, batched together and as the padded batch", () =>
    Effect.gen(function*() {
      const before = numTensors()
      const model = yield* loadRewardCheckpoint(fixture)
      expect(model.padId).toBe(95)
      for (const input of reference.inputs) {
        const [score] = yield* scoreIds(model, [input.input_ids])
        expect(Math.abs(score - input.score), input.name).toBeLessThan(1e-5)
      }
      // Unequal lengths in one batch: padded here with the pad id.
      const together = yield* scoreIds(model, reference.inputs.map((i) => i.input_ids))
      expect(maxAbsDiff(together, reference.inputs.map((i) => i.score))).toBeLessThan(1e-5)
      // The batch exactly as transformers was given it (right-padded rows of equal length).
      const padded = yield* scoreIds(model, reference.padded_batch.input_ids)
      expect(maxAbsDiff(padded, reference.padded_batch.scores)).toBeLessThan(1e-5)
      // One sequence per forward gives the same numbers.
      const single = yield* scoreIds(model, reference.inputs.map((i) => i.input_ids), 1)
      expect(maxAbsDiff(single, together)).toBeLessThan(1e-6)
      disposeRewardCheckpoint(model)
      expect(numTensors()).toBe(before)
    }))
})

describe("a reward model on ONNX Runtime", () => {
  beforeAll(() => useBackend("cpu"))

  /** tfjs's and ONNX Runtime's scores of `sequences` (batches of 2, so padded ones meet). */
  const bothEngines = (model: RewardCheckpoint, sequences: ReadonlyArray<ReadonlyArray<number>>) =>
    Effect.scoped(Effect.gen(function*() {
      const ort = yield* openOrtRewardScorer(model)
      return [yield* scoreIds(model, sequences, 2), yield* scoreIds(model, sequences, 2, ort)] as const
    }))

  it.effect("gives tfjs's scores within 1e-4 on the transformers fixture, and transformers' within 1e-5", () =>
    Effect.gen(function*() {
      const model = yield* loadRewardCheckpoint(fixture)
      const [tfjs, ort] = yield* bothEngines(model, [...reference.inputs.map((i) => i.input_ids), ...reference.padded_batch.input_ids])
      expect(maxAbsDiff(ort, tfjs)).toBeLessThan(1e-4)
      expect(maxAbsDiff(ort, [...reference.inputs.map((i) => i.score), ...reference.padded_batch.scores])).toBeLessThan(1e-5)
      disposeRewardCheckpoint(model)
    }))

  it.effect("gives tfjs's scores within 1e-4 on a Qwen2 with biases and a tied embedding", () =>
    Effect.gen(function*() {
      const { config, params } = biasedQwen2()
      const model: RewardCheckpoint = { path: "qwen2", config, params, head: tf.randomNormal([config.hiddenSize, 1], 0, 0.5, "float32", 11) as tf.Tensor2D, padId: 0 }
      const [tfjs, ort] = yield* bothEngines(model, [[3, 1, 7, 2, 9], [5, 2, 0, 0], [4, 4, 4], [1, 2, 3, 4, 5, 6, 7]])
      expect(maxAbsDiff(ort, tfjs)).toBeLessThan(1e-4)
      disposeRewardCheckpoint(model)
    }))

  it.effect("scores through a plan's reward on the engine asked for", () =>
    Effect.gen(function*() {
      const root = yield* rewardFolders(["rm"])
      const score = (inference: "tfjs" | "ort") =>
        Effect.gen(function*() {
          const reward = yield* RewardModel
          return yield* reward.score([{ prompt: "2+3=", answer: "5" }, { prompt: "4*2=", answer: "8" }], ["5", "it is 8"])
        }).pipe(Effect.provide(RewardModel.layer([{ model: join(root, "rm"), weight: 1, batchSize: 4 }], inference).pipe(Layer.provide(currentCompute))))
      expect(maxAbsDiff(yield* score("ort"), yield* score("tfjs"))).toBeLessThan(1e-4)
    }))
})

describe("reward models", () => {
  beforeAll(() => useBackend("cpu"))

  it("are read at the last token before the first pad, else at the last token", () => {
    expect(poolIndex([5, 6, 7], 0)).toBe(2)
    expect(poolIndex([5, 6, 0, 0], 0)).toBe(1)
    expect(poolIndex([5, 0, 6, 0], 0)).toBe(0)
    expect(poolIndex([5, 6, 7], undefined)).toBe(2)
    // A sequence starting with the pad token has no token before it: read at the end.
    expect(poolIndex([0, 6, 7], 0)).toBe(2)
  })

  it.effect("score text as tokenizer(prompt + completion) with special tokens", () =>
    Effect.gen(function*() {
      const model = yield* loadRewardCheckpoint(fixture)
      const tokenizer = baseTokenizer() // ids < 96: any tokenizer within the vocabulary will do
      const reward = classifierReward(model, tokenizer)
      const prompts = [{ prompt: "2+3=", answer: "5" }, { prompt: "f(x)=x*2\n", answer: "" }]
      const completions = ["5", "x2*"]
      const scores = yield* reward.score(prompts, completions)
      const direct = yield* scoreIds(model, prompts.map((p, i) => tokenizer.encode(p.prompt + completions[i], { addSpecialTokens: true })))
      expect(scores).toEqual(direct)
      expect((yield* reward.scoreParts(prompts, completions)).parts).toEqual({})
      disposeRewardCheckpoint(model)
    }))

  it.effect("in a plan's reward are named after their folders, so the parts say which model scored", () =>
    Effect.gen(function*() {
      // A Hub id's snapshot folder (models--org--name/snapshots/<commit>) is named after its repository.
      const folders = ["helpful", "concise", "models--org--judge/snapshots/0123abcd"]
      const root = yield* rewardFolders(folders)
      const layer = RewardModel.layer(folders.map((folder) => ({ model: join(root, folder), weight: 1, batchSize: 4 })))
      const scored = yield* Effect.gen(function*() {
        const reward = yield* RewardModel
        return yield* reward.scoreParts([{ prompt: "2+3=", answer: "5" }], ["5"])
      }).pipe(
        Effect.provide(layer.pipe(Layer.provide(currentCompute)))
      )
      expect(Object.keys(scored.parts)).toEqual(["helpful", "concise", "judge"])
    }))

  it.effect("are refused where a causal LM is needed, and a causal LM is refused as a reward model", () =>
    Effect.gen(function*() {
      const asLm = yield* Effect.flip(loadCheckpoint(fixture))
      expect(asLm._tag).toBe("UnsupportedModel")
      expect(asLm.message).toContain("LlamaForSequenceClassification")
      expect(asLm.message).toContain("simmer reward")
      const lm = yield* Effect.flip(loadRewardCheckpoint(join(import.meta.dirname, "../fixtures/hf-llama-gqa-f32")))
      expect(lm._tag).toBe("InvalidRewardModel")
      if (lm._tag === "InvalidRewardModel") expect(lm.problem).toBe("causal-lm")
      expect(lm.message).toContain("LlamaForCausalLM")
      const either = yield* loadCheckpoint(fixture, { expected: "either" })
      expect(either.kind).toBe("sequence-classification")
      expect(either.scoreHead?.shape).toEqual([64, 1])
      expect(either.params.lmHead).toBeUndefined()
      disposeCheckpoint(either)
    }))

  it.effect("with an lm_head instead of score: InvalidRewardModel naming both", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* fixtureCopy
      const weights = join(dir, "model.safetensors")
      const tensors = yield* readSafetensors(weights)
      const score = tensors.get("score.weight")!
      yield* writeSafetensors(weights, [...tensors.entries()].map(([name, t]) => ({
        name: name === "score.weight" ? "lm_head.weight" : name,
        dtype: "F32" as const,
        shape: name === "score.weight" ? [96, 64] : t.shape,
        data: Effect.succeed(name === "score.weight" ? new Float32Array(96 * 64).fill(score.data[0]) : t.data)
      })))
      const before = numTensors()
      const error = yield* Effect.flip(loadRewardCheckpoint(dir))
      expect(error._tag).toBe("InvalidRewardModel")
      if (error._tag === "InvalidRewardModel") expect(error.problem).toBe("lm-head")
      expect(error.message).toContain("lm_head.weight")
      expect(error.message).toContain("score.weight")
      expect(error.message).toContain(weights)
      expect(numTensors()).toBe(before)
    })))

  it.effect("with num_labels other than 1 (id2label, num_labels, or neither): InvalidRewardModel", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* fixtureCopy
      for (const edit of [
        (c: Record<string, unknown>) => {
          c.id2label = { 0: "bad", 1: "good" }
        },
        (c: Record<string, unknown>) => {
          delete c.id2label
          c.num_labels = 3
        },
        (c: Record<string, unknown>) => {
          delete c.id2label
          delete c.num_labels
        }
      ]) {
        yield* editConfig(dir, edit)
        const error = yield* Effect.flip(loadRewardCheckpoint(dir))
        expect(error._tag).toBe("InvalidRewardModel")
        if (error._tag === "InvalidRewardModel") expect(error.problem).toBe("num-labels")
        expect(error.message).toContain(join(dir, "config.json"))
      }
    })))

  it.effect("without a pad id: one sequence or equal lengths score, a padded batch is MissingPadToken", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* fixtureCopy
      yield* editConfig(dir, (c) => {
        delete c.pad_token_id
      })
      const model = yield* loadRewardCheckpoint(dir)
      expect(model.padId).toBeUndefined()
      const [len7] = yield* scoreIds(model, [reference.inputs[1].input_ids])
      expect(Math.abs(len7 - reference.inputs[1].score)).toBeLessThan(1e-5)
      const before = numTensors()
      const error = yield* Effect.flip(scoreIds(model, reference.inputs.map((i) => i.input_ids)))
      expect(error._tag).toBe("MissingPadToken")
      expect(error.message).toContain("pad_token_id")
      expect(error.message).toContain(dir)
      expect(numTensors()).toBe(before)
      disposeRewardCheckpoint(model)
    })))

  it.effect("refuse empty sequences and ids outside the vocabulary", () =>
    Effect.gen(function*() {
      const model = yield* loadRewardCheckpoint(fixture)
      const empty = yield* Effect.flip(scoreIds(model, [[1, 2], []]))
      const outside = yield* Effect.flip(scoreIds(model, [[1, 96]]))
      expect(empty._tag).toBe("InvalidRewardInput")
      expect(empty.message).toContain("no tokens")
      expect(outside._tag).toBe("InvalidRewardInput")
      expect(outside.message).toContain("96")
      disposeRewardCheckpoint(model)
    }))
})
