/**
 * Rule rewards against hand-graded completions, weighted sums, and a user's own reward whose
 * error type reaches the code using it.
 */
import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import { makeReward, type Reward } from "../../src/reward/Reward.ts"
import { ruleReward } from "../../src/reward/RuleReward.ts"
import { weightedSum } from "../../src/reward/WeightedReward.ts"
import { type RewardError, RewardModel } from "../../src/services/RewardModel.ts"
import { arith } from "../../src/tasks/Arith.ts"
import { program } from "../../src/tasks/Program.ts"
import { Compute } from "../../src/services/Compute.ts"

const arithPrompt = { prompt: "ivy has 4 shells, buys 8 more, then triples them. how many now?\n", answer: "36" }

describe("rule rewards", () => {
  it.effect("arith: 0.9 for the right answer, 0.1 for a #### line, nothing without one", () =>
    Effect.gen(function*() {
      const reward = ruleReward("arith")
      const completions = ["4+8=12\n12*3=36\n#### 36", "4+8=12\n#### 12", "4+8=12\n12*3=36", "####", "#### 36.0"]
      const scores = yield* reward.scoreParts(completions.map(() => arithPrompt), completions)
      expect(scores.parts).toEqual({ correct: [1, 0, 0, 0, 1], format: [1, 1, 0, 0, 1] })
      expect(scores.total.map((v) => Math.round(v * 1000) / 1000)).toEqual([1, 0.1, 0, 0, 1])
    }))

  it.effect("program: format when the first line parses, correct when it passes every hidden test", () =>
    Effect.gen(function*() {
      // f(x) = x*3+1 on the hidden inputs -1, 0, 2.
      const prompt = { prompt: "f(x)=x*3+1\n", answer: "-1=-2,0=1,2=7" }
      const completions = ["x3*1+", "1x3*+\nignored", "x3*", "x3*+[", "x3*q", "", "xx+x+1+"]
      const scores = yield* ruleReward("program").scoreParts(completions.map(() => prompt), completions)
      expect(scores.parts.correct).toEqual([1, 1, 0, 0, 0, 0, 1])
      expect(scores.parts.format).toEqual([1, 1, 1, 0, 0, 0, 1])
    }))

  it.effect("grade the built-in tasks' reference completions as right, with configurable weights", () =>
    Effect.gen(function*() {
      for (const [task, rule] of [[arith(), "arith"], [program(), "program"]] as const) {
        const examples = task.take("test", 20)
        const scores = yield* ruleReward(rule, { correct: 2, format: -1 }).score(examples, examples.map((e) => e.completion))
        expect(scores).toEqual(examples.map(() => 1))
      }
      const qa = yield* ruleReward("question-answer").score([{ prompt: "q", answer: "1,000" }], ["so\n#### 1000"])
      expect(qa[0]).toBeCloseTo(1, 12)
    }))

  it.effect("a count mismatch between prompts and completions is a defect", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(ruleReward("arith").score([arithPrompt], []))
      expect(exit._tag).toBe("Failure")
    }))
})

describe("weighted sums", () => {
  it.effect("add weighted totals and name every component's parts", () =>
    Effect.gen(function*() {
      const constant = (name: string, value: number) =>
        makeReward(name, (_prompts, completions) => Effect.succeed({ total: completions.map(() => value), parts: {} }))
      const sum = weightedSum([
        { reward: ruleReward("arith"), weight: 1 },
        { reward: constant("bonus", 2), weight: 0.5 },
        { reward: constant("bonus", -1), weight: 3 }
      ])
      const scores = yield* sum.scoreParts([arithPrompt, arithPrompt], ["#### 36", "no"])
      expect(scores.total).toEqual([1 + 1 - 3, 0 + 1 - 3])
      expect(Object.keys(scores.parts).sort()).toEqual(["arith", "arith.correct", "arith.format", "bonus", "bonus#2"])
      expect(scores.parts["bonus#2"]).toEqual([-1, -1])
    }))
})

/** A user's own reward with its own error type, served as a Layer. */
class JudgeUnavailable extends Schema.TaggedError<JudgeUnavailable>()("JudgeUnavailable", { message: Schema.String }) {}

class Judge extends Context.Service<Judge, Reward<JudgeUnavailable>>()("test/Judge") {
  /** Likes short completions; refuses to judge an empty one. */
  static readonly layer = Layer.succeed(
    Judge,
    makeReward("judge", (_prompts, completions) =>
      completions.some((c) => c.length === 0)
        ? Effect.fail(new JudgeUnavailable({ message: "the judge does not rate empty completions" }))
        : Effect.succeed({ total: completions.map((c) => 1 / c.length), parts: {} }))
  )
}

describe("a user's own reward Layer", () => {
  const scoreBoth = (completions: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const judge = yield* Judge
      const rewards = yield* RewardModel
      const sum = weightedSum([{ reward: judge, weight: 1 }, { reward: rewards, weight: 1 }])
      return yield* sum.score(completions.map(() => arithPrompt), completions)
    })

  it("keeps its error in the error union of the code using it", () => {
    type Program = ReturnType<typeof scoreBoth>
    expectTypeOf<Effect.Error<Program>>().toEqualTypeOf<JudgeUnavailable | RewardError>()
    expectTypeOf<Effect.Services<Program>>().toEqualTypeOf<Judge | RewardModel>()
  })

  const layers = Layer.mergeAll(Judge.layer, RewardModel.layer([{ rule: "arith", weight: 1, correct: 0.9, format: 0.1 }]))
    .pipe(Layer.provide(Compute.layer("cpu")))

  it.effect("composes with the plan's rewards, and its failure is caught by tag", () =>
    Effect.gen(function*() {
      const scores = yield* scoreBoth(["#### 36", "#### 3"])
      expect(scores[0]).toBeCloseTo(1 / 7 + 1, 12)
      expect(scores[1]).toBeCloseTo(1 / 6 + 0.1, 12)
      const caught = yield* scoreBoth([""]).pipe(Effect.catchTag("JudgeUnavailable", (e) => Effect.succeed(e.message)))
      expect(caught).toBe("the judge does not rate empty completions")
    }).pipe(Effect.provide(layers)))
})
