import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { beforeAll } from "vitest"
import { paramSpecs, disposeParams, initParams } from "../../src/model/Params.ts"
import type { Model } from "../../src/model/Model.ts"
import { adapterTuner } from "../../src/tune/AdapterTuning.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { SftConfig } from "../../src/tune/Sft.ts"
import { numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"
import { arithContext } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

const tokenizer = baseTokenizer()
const config = tinyConfig({ vocabSize: tokenizer.vocabSize }, { intermediateSize: 32 })
const sft = Schema.decodeUnknownSync(SftConfig)({ kind: "sft", batchSize: 4, lr: 0.01, maxSeqLen: 48, adapter: { rank: 4 } })
const spec = sft.adapter!

const fresh = (): Model => ({ config, params: initParams(config, 3, 0.2) })
const context = (original: Model) => arithContext(original, 4, 5)
const values = (model: Model) => paramSpecs(model.config).map((s) => Array.from(s.get(model.params).dataSync()))

describe("adapter tuning (tuner.adapter)", () => {
  it("a plan's adapter entry decodes with every projection targeted by default", () => {
    expect(spec).toEqual({ rank: 4, targets: ["q", "k", "v", "o", "gate", "up", "down"] })
  })

  it.effect("trains adapters only, merges them on finish, and resumes from a snapshot exactly", () =>
    Effect.gen(function*() {
      const tuner = adapterTuner(sft, spec)
      const original = fresh()
      const before = numTensors()
      // Uninterrupted: 4 steps.
      const whole = yield* Effect.scoped(Effect.gen(function*() {
        const base = fresh()
        const frozen = values(base)
        const session = yield* tuner.start(base, context(original))
        const losses: Array<number> = []
        for (let i = 0; i < 4; i++) losses.push((yield* session.step).loss)
        expect(values(session.current())).toEqual(frozen) // the base never changes
        const tuned = yield* session.finish
        return { losses, weights: values(tuned), tuned }
      }))
      expect(whole.weights).not.toEqual(values(original))
      // Interrupted after 2 steps: a snapshot, then a new session on the base resumes.
      const resumed = yield* Effect.scoped(Effect.gen(function*() {
        const snapshot = yield* Effect.scoped(Effect.gen(function*() {
          const session = yield* tuner.start(fresh(), context(original))
          yield* session.step
          yield* session.step
          return yield* session.snapshot
        }))
        const session = yield* tuner.resume(fresh(), snapshot, context(original))
        expect(session.stepsDone()).toBe(2)
        const losses = [(yield* session.step).loss, (yield* session.step).loss]
        const tuned = yield* session.finish
        return { losses, weights: values(tuned), tuned }
      }))
      expect(resumed.losses).toEqual(whole.losses.slice(2))
      expect(resumed.weights).toEqual(whole.weights)
      disposeParams(config, whole.tuned.params)
      disposeParams(config, resumed.tuned.params)
      expect(numTensors()).toBe(before)
      disposeParams(config, original.params)
    }))

  it.effect("a snapshot from other adapters is refused with InvalidTunerState", () =>
    Effect.gen(function*() {
      const original = fresh()
      const snapshot = yield* Effect.scoped(Effect.gen(function*() {
        const session = yield* adapterTuner(sft, spec).start(fresh(), context(original))
        return yield* session.snapshot
      }))
      const other = adapterTuner(sft, { ...spec, rank: 2 })
      const base = fresh()
      const error = yield* Effect.flip(Effect.scoped(other.resume(base, snapshot, context(original))))
      expect(error._tag).toBe("InvalidTunerState")
      expect(error.message).toContain("shape")
      disposeParams(config, base.params)
      disposeParams(config, original.params)
    }))
})
