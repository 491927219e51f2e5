/**
 * The two inference engines of graded evaluation agree: batched greedy decoding of arith
 * prompts (different lengths, so left padding) with the bundled model gives the same ids on
 * ONNX Runtime (the checkpoint's ONNX graph, KV cache) as on tfjs, and so the same accuracy.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { loadCheckpoint, openLazyCheckpoint } from "../../src/io/CheckpointReader.ts"
import { loadTokenizer } from "../../src/io/Tokenizer.ts"
import { evaluateAccuracy } from "../../src/eval/Accuracy.ts"
import { tfjsGreedyDecoder } from "../../src/eval/GreedyDecoder.ts"
import { disposeParams } from "../../src/model/Params.ts"
import { openCheckpointSession } from "../../src/onnx/CheckpointSession.ts"
import { ortGreedyDecoder } from "../../src/onnx/OrtGenerate.ts"
import { openModelSession } from "../../src/onnx/ModelSession.ts"
import { runDecoder } from "../../src/onnx/OrtDecoder.ts"
import { engineFixtures } from "./_support.ts"
import { arith } from "../../src/tasks/Arith.ts"
import { encodePrompt } from "../../src/tasks/Encode.ts"
import { maxAbsDiff, useBackend } from "../helpers/backend.ts"
import { simmer } from "../helpers/cli.ts"
import { unlimitedRoom } from "../helpers/room.ts"

beforeAll(() => useBackend("cpu"))

const base = join(import.meta.dirname, "../../models/base")

describe("ONNX Runtime and tfjs greedy decoding", () => {
  it.effect("give identical ids and accuracy on the bundled model for arith test examples", () =>
    Effect.scoped(Effect.gen(function*() {
      const tokenizer = yield* loadTokenizer(base)
      const task = arith({}, 1)
      const examples = task.take("test", 6)
      const prompts = examples.map((e) => encodePrompt(tokenizer, e.prompt))
      expect(new Set(prompts.map((p) => p.length)).size).toBeGreaterThan(1) // left padding is exercised
      const options = { maxNewTokens: 24, stopTokens: tokenizer.eosId !== undefined ? [tokenizer.eosId] : [] }

      const model = yield* loadCheckpoint(base)
      const tfjs = tfjsGreedyDecoder(model.config, model.params)
      const checkpoint = yield* openLazyCheckpoint(base)
      const ort = ortGreedyDecoder(yield* openCheckpointSession(checkpoint), model.config)
      const ortLast = ortGreedyDecoder(yield* openCheckpointSession(checkpoint, { logits: "last" }), model.config)
      const [fromTfjs, fromOrt] = [yield* tfjs.decode(prompts, options), yield* ort.decode(prompts, options)]
      expect(fromOrt).toEqual(fromTfjs)
      expect(yield* ortLast.decode(prompts, options)).toEqual(fromTfjs)
      expect(fromOrt.every((ids) => ids.length > 3)).toBe(true)

      const graded = (decoder: typeof tfjs) => evaluateAccuracy(model.config, decoder, tokenizer, examples, task, { batchSize: 4, room: unlimitedRoom })
      const [a, b] = [yield* graded(tfjs), yield* graded(ort)]
      expect(b.correct).toBe(a.correct)
      expect(b.samples).toEqual(a.samples)
      disposeParams(model.config, model.params)
    })))

  for (const fixture of engineFixtures) {
    it.effect(`gives the last position's logits alone, as the whole graph gives them, on ${fixture.name}`, () =>
      Effect.scoped(Effect.gen(function*() {
        const model = yield* fixture.model()
        const { config } = model
        const V = config.vocabSize
        const all = yield* openModelSession(model)
        const last = yield* openModelSession(model, { logits: "last" })
        // Left padding, as decoding feeds prompts.
        const input = { ids: [[0, 0, 3, 1, 7], [5, 5, 2, 8, 6]], attentionMask: [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], positions: [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]] }
        const full = yield* Effect.promise(() => runDecoder(all, config, input))
        const tail = yield* Effect.promise(() => runDecoder(last, config, input))
        expect(tail.logits.length).toBe(2 * V)
        const expected = [0, 1].flatMap((b) => Array.from(full.logits.subarray((b * 5 + 4) * V, (b * 5 + 5) * V)))
        expect(maxAbsDiff(tail.logits, expected)).toBeLessThan(1e-6)
        expect(tail.cache.length).toBe(full.cache.length)
        for (const [name, past] of Object.entries(tail.cache.feeds)) expect(maxAbsDiff(past.data as Float32Array, full.cache.feeds[name].data as Float32Array), name).toBeLessThan(1e-6)
        disposeParams(config, model.params)
      })))
  }

  it("simmer eval --inference ort reports the same accuracy as --inference tfjs", async () => {
    const run = (engine: string) => simmer(["eval", "models/base", "--task", "arith", "--examples", "8", "--batch-size", "4", "--inference", engine, "--json"])
    const [tfjs, ort] = await Promise.all([run("tfjs"), run("ort")])
    expect(tfjs.status, tfjs.stderr).toBe(0)
    expect(ort.status, ort.stderr).toBe(0)
    const [a, b] = [JSON.parse(tfjs.stdout), JSON.parse(ort.stdout)]
    expect(b.correct).toBe(a.correct)
    expect(b.examples).toBe(8)
    expect(b.parameters).toBe(a.parameters)
  })
})
