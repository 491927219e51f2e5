/**
 * GRPO steps on a tiny model: the rule reward rises by a clear margin in a fixed number of
 * steps; a step is a function of its state (same state, same result); a failing reward or a
 * NaN loss leaves the state usable; no tensors leak.
 */
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Model } from "../../src/model/Model.ts"
import { assembleParams, disposeParams, initParams, type Params, paramSpecs, paramTensors } from "../../src/model/Params.ts"
import { Rng } from "../../src/model/Rng.ts"
import { makeReward, type Reward } from "../../src/reward/Reward.ts"
import { ruleReward } from "../../src/reward/RuleReward.ts"
import { encodePrompt } from "../../src/tasks/Encode.ts"
import { program } from "../../src/tasks/Program.ts"
import { defaultAdamW, disposeAdamW, initAdamW } from "../../src/tune/AdamW.ts"
import { baseTokenizer } from "../../src/tune/BaseTraining.ts"
import { startCursor } from "../../src/tune/Batches.ts"
import { type GrpoSettings, type GrpoState, grpoStep } from "../../src/tune/GrpoStep.ts"
import { sampleRollouts, tfjsRolloutDecoder } from "../../src/tune/Rollouts.ts"
import { warmupCosine } from "../../src/tune/Schedule.ts"
import type { NonFiniteLoss } from "../../src/tune/Trainer.ts"
import { numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"

const tokenizer = baseTokenizer()
const config = tinyConfig({ vocabSize: tokenizer.vocabSize, maxPositionEmbeddings: 128 })
const task = program()
const prompts = task.take("train", 64).map((example) => ({ example, ids: encodePrompt(tokenizer, example.prompt) }))

const settings = (steps: number, lr: number): GrpoSettings => ({
  promptsPerStep: 4,
  rollouts: 8,
  temperature: 1,
  topP: 1,
  maxNewTokens: 4,
  clip: 0.2,
  klCoef: 0.01,
  ppoEpochs: 1,
  update: { schedule: warmupCosine(lr, steps, 0.05), optimizer: { ...defaultAdamW, weightDecay: 0 }, maxGradNorm: 1 }
})

const copyParams = (params: Params): Params => {
  const specs = paramSpecs(config)
  return assembleParams(config, (name) => specs.find((s) => s.name === name)!.get(params).clone())
}

const startState = (params: Params, seed: number): GrpoState => ({
  params: copyParams(params),
  optimizer: initAdamW(paramTensors(config, params)),
  cursor: startCursor(seed),
  rng: Rng.seeded(seed).state()
})

const disposeState = (state: GrpoState) => {
  disposeParams(config, state.params)
  disposeAdamW(state.optimizer)
}

const steps = <E>(state: GrpoState, count: number, reference: Model, reward: Reward<E>, options: GrpoSettings) =>
  Effect.gen(function*() {
    let current = state
    const reports = []
    for (let i = 0; i < count; i++) {
      const out = yield* grpoStep(config, current, prompts, { reference, reward, tokenizer }, options)
      current = out.state
      reports.push(out.report)
    }
    return { state: current, reports }
  })

/** The mean rule reward of 8 samples of each of 16 test prompts, always drawn with the same seed. */
const meanReward = (params: Params) =>
  Effect.gen(function*() {
    const examples = task.take("test", 16)
    const rollouts = yield* sampleRollouts(tfjsRolloutDecoder({ config, params }), examples.map((e) => encodePrompt(tokenizer, e.prompt)), {
      rollouts: 8,
      temperature: 1,
      topP: 1,
      maxNewTokens: 4,
      stopTokens: [tokenizer.eosId]
    }, Rng.seeded(99))
    const scores = yield* ruleReward("program").score(
      rollouts.map((r) => examples[r.prompt]),
      rollouts.map((r) => tokenizer.decode(r.completion, { skipSpecialTokens: true }))
    )
    return scores.reduce((a, b) => a + b, 0) / scores.length
  })

describe("GRPO on a toy task (wasm)", () => {
  it.effect("raises a random model's program rule reward by a clear margin in 20 steps", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => useBackend("wasm"))
      const before = numTensors()
      const params = initParams(config, 1, 0.02)
      const reference = { config, params }
      const start = yield* meanReward(params)
      // A random model rarely writes a program that parses (format part 0.1 each).
      expect(start).toBeLessThan(0.02)
      const { state, reports } = yield* steps(startState(params, 3), 20, reference, ruleReward("program"), settings(20, 2e-2))
      const end = yield* meanReward(state.params)
      expect(end - start).toBeGreaterThan(0.04)
      expect(reports.at(-1)!.metrics.kl).toBeGreaterThan(0)
      disposeState(state)
      disposeParams(config, params)
      expect(numTensors()).toBe(before)
    }))
})

/** A reward whose service is down. */
class JudgeDown extends Schema.TaggedError<JudgeDown>()("JudgeDown", { message: Schema.String }) {}

describe("GRPO steps (cpu)", () => {
  it.effect("are functions of their state: the same state gives the same weights, byte for byte", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => useBackend("cpu"))
      const params = initParams(config, 4, 0.1)
      const reference = { config, params }
      const options = settings(3, 1e-2)
      const a = yield* steps(startState(params, 5), 3, reference, ruleReward("program"), options)
      const b = yield* steps(startState(params, 5), 3, reference, ruleReward("program"), options)
      const bytes = (s: GrpoState) => paramTensors(config, s.params).map((t) => Array.from(t.dataSync()))
      expect(bytes(b.state)).toEqual(bytes(a.state))
      expect(b.state.rng).toEqual(a.state.rng)
      expect(b.state.cursor).toEqual(a.state.cursor)
      expect(a.state.optimizer.step).toBe(3)
      disposeState(a.state)
      disposeState(b.state)
      disposeParams(config, params)
    }))

  it.effect("leave the state usable after a failing reward or a NaN loss, leaking nothing", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => useBackend("cpu"))
      const params = initParams(config, 4, 0.1)
      const reference = { config, params }
      const state = startState(params, 6)
      const before = numTensors()
      const down: Reward<JudgeDown> = makeReward("judge", () => Effect.fail(new JudgeDown({ message: "judge offline" })))
      const failed = yield* Effect.flip(grpoStep(config, state, prompts, { reference, reward: down, tokenizer }, settings(2, 1e-2)))
      expect(failed._tag).toBe("JudgeDown")
      const nan = makeReward("nan", (_p, completions) => Effect.succeed({ total: completions.map((_, i) => (i === 0 ? NaN : 1)), parts: {} }))
      const diverged = yield* Effect.flip(grpoStep(config, state, prompts, { reference, reward: nan, tokenizer }, settings(2, 1e-2)))
      expect(diverged._tag).toBe("NonFiniteLoss")
      expect(numTensors()).toBe(before)
      // The state still holds live weights and moments: a good step continues from it.
      const next = yield* grpoStep(config, state, prompts, { reference, reward: ruleReward("program"), tokenizer }, settings(2, 1e-2))
      expect(next.state.optimizer.step).toBe(1)
      expect(numTensors()).toBe(before)
      disposeState(next.state)
      disposeParams(config, params)
    }))
})

describe("GRPO step errors", () => {
  it("are the reward's own errors and NonFiniteLoss", () => {
    expectTypeOf<Effect.Error<ReturnType<typeof grpoStep<JudgeDown, never>>>>().toEqualTypeOf<JudgeDown | NonFiniteLoss>()
  })
})
