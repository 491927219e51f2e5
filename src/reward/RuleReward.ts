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
import { RewardDoesNotFit } from "./Errors.ts"
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

/** The data each rule grades, for a refusal. */
const gradedData: Record<RuleName, string> = {
  arith: "arith and question-answer data (a `#### <answer>` line)",
  program: "the program task (programs run against its hidden tests)",
  "question-answer": "arith and question-answer data (a `#### <answer>` line)"
}

/**
 * Whether the rule `name` can grade `datasets` (those GRPO draws its prompts from): each must be
 * graded the way the rule grades. Otherwise the rule would pay its format part for nothing.
 */
export const checkRuleFits = (
  name: RuleName,
  datasets: ReadonlyArray<{ readonly name: string; readonly grader: Grader | undefined }>
): RewardDoesNotFit | undefined => {
  const misfits = datasets.filter((d) => d.grader?.grade !== rules[name].grader.grade).map((d) => d.name)
  return misfits.length === 0 ? undefined : new RewardDoesNotFit({
    rule: name,
    datasets: misfits,
    message: `The reward rule ${name} grades ${gradedData[name]}, but GRPO would tune on ${misfits.join(", ")} (data.tune): ` +
      `it would never pay its correct part, only its format part. Choose the rule that fits the data ` +
      `(arith or question-answer for #### answers, program for the program task), or a reward model.`
  })
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
