/**
 * Rule rewards from the task graders, the reference recipe of PTL's RL recovery:
 * `correct · 0.9 + format · 0.1`, both 0 or 1 per completion.
 *
 *   arith            format: a `#### <answer>` line is present; correct: its answer is right
 *   program          format: the program (first line) parses; correct: it passes every hidden test
 *   question-answer  JSONL {"question","answer"} data, graded as arith (GSM8K style)
 *
 * The format part rewards a completion that can be graded at all, which is what lets a weak
 * policy find the shape of an answer before it finds the right one.
 */
import { Effect, Schema } from "effect"
import { finalAnswer, finalAnswerGrader } from "../tasks/Answer.ts"
import { programGrader, programParses } from "../tasks/Program.ts"
import type { Grader } from "../tasks/Task.ts"
import { makeReward, type Reward } from "./Reward.ts"

export const RuleNames = ["arith", "program", "question-answer"] as const
export type RuleName = (typeof RuleNames)[number]

export const RuleWeights = Schema.Struct({
  correct: Schema.Finite,
  format: Schema.Finite
})
export type RuleWeights = typeof RuleWeights.Type

/** The reference recipe's weights. */
export const defaultRuleWeights: RuleWeights = { correct: 0.9, format: 0.1 }

interface Rule {
  readonly grader: Grader
  readonly wellFormed: (completion: string) => boolean
}

const hasFinalAnswer = (completion: string) => finalAnswer(completion) !== undefined

const rules: Record<RuleName, Rule> = {
  arith: { grader: finalAnswerGrader, wellFormed: hasFinalAnswer },
  program: { grader: programGrader, wellFormed: programParses },
  "question-answer": { grader: finalAnswerGrader, wellFormed: hasFinalAnswer }
}

/** The rule reward `name` with the given weights; its parts are `correct` and `format` (0 or 1 each). */
export const ruleReward = (name: RuleName, weights: RuleWeights = defaultRuleWeights): Reward =>
  makeReward(name, (prompts, completions) =>
    Effect.sync(() => {
      const rule = rules[name]
      const correct = completions.map((completion, i) =>
        rule.grader.grade({ prompt: prompts[i].prompt, completion: "", answer: prompts[i].answer }, completion) ? 1 : 0)
      const format = completions.map((completion) => (rule.wellFormed(completion) ? 1 : 0))
      return {
        total: correct.map((c, i) => weights.correct * c + weights.format * format[i]),
        parts: { correct, format }
      }
    }))
