/**
 * Numerics against Hugging Face transformers itself: test/fixtures/hf-llama-gqa-f32 was
 * written by transformers' save_pretrained together with the logits and greedy tokens its own
 * LlamaForCausalLM computes (float32, eager attention).
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { beforeAll } from "vitest"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { generate } from "../../src/model/Generate.ts"
import { disposeParams } from "../../src/model/Params.ts"
import { readFloats } from "../../src/model/Read.ts"
import { forward } from "../../src/model/Transformer.ts"
import type { BackendName } from "../../src/compute/Backend.ts"
import { maxAbsDiff, useBackend } from "../helpers/backend.ts"

const fixture = join(import.meta.dirname, "../fixtures/hf-llama-gqa-f32")

interface Reference {
  readonly inputs: ReadonlyArray<{ name: string; input_ids: Array<number>; logits: Array<Array<number>> }>
  readonly greedy: { prompt_ids: Array<number>; generated_ids: Array<number> }
}
const reference: Reference = JSON.parse(readFileSync(join(fixture, "reference.json"), "utf8"))

describe.each(["cpu", "wasm", "webgpu"] as const)("transformers' LlamaForCausalLM reference on %s", (backend: BackendName) => {
  beforeAll(() => useBackend(backend))

  it.effect("logits match to 1e-4 for every input and greedy ids exactly", () =>
    Effect.gen(function*() {
      const { config, params } = yield* loadCheckpoint(fixture)
      for (const input of reference.inputs) {
        const logits = yield* readFloats(tf.tidy(() => forward(config, params, tf.tensor2d([input.input_ids], undefined, "int32")).logits), true)
        expect(maxAbsDiff(logits, input.logits.flat()), input.name).toBeLessThan(1e-4)
      }
      const greedy = (yield* generate(config, params, [reference.greedy.prompt_ids], {
        temperature: 0,
        topP: 1,
        maxNewTokens: reference.greedy.generated_ids.length
      }))[0]
      expect(greedy).toEqual(reference.greedy.generated_ids)
      disposeParams(config, params)
    }))
})
