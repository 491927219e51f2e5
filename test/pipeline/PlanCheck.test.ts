/**
 * What `simmer plan check` finds in the checkpoints a plan names besides its model: reward
 * models that are not (a causal LM, no tokenizer.json, missing), a teacher that is a reward
 * model, and a reward model given as the model to compress.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { cp } from "node:fs/promises"
import { join } from "node:path"
import { bundledModelPath, parsePlan } from "../../src/pipeline/Plan.ts"
import { checkPlanInputs } from "../../src/pipeline/PlanCheck.ts"
import { tempDir } from "../io/_support.ts"

const fixtures = join(import.meta.dirname, "../fixtures")

const problemsOf = (text: string, folder: string) =>
  parsePlan(text, join(folder, "plan.yaml"), { inputChecks: checkPlanInputs(bundledModelPath) }).pipe(
    Effect.flip,
    Effect.map((e) => e.problems)
  )

const plan = (model: string, rest: string) => `model: ${model}
target: { parameters: 0.9 }
data: { tune: [{ task: arith }], calibration: [{ task: arith }], evaluate: [{ task: arith }] }
${rest}`

describe("plan check of reward models and teachers", () => {
  it.effect("names each checkpoint that cannot play its part, on its line", () =>
    Effect.gen(function*() {
      const folder = yield* tempDir
      yield* Effect.promise(() => cp(join(fixtures, "hf-llama-reward-f32"), join(folder, "rm"), { recursive: true }))
      const problems = yield* problemsOf(
        plan("base", `tuner: [{ kind: distill, teacher: rm }, { kind: grpo }]
reward: [{ model: rm }, { model: ${join(fixtures, "hf-llama-gqa-f32")} }, { model: nowhere }]
`),
        folder
      )
      expect(problems).toEqual([
        expect.stringMatching(/^line 4: tuner\[0\]\.teacher: .*\/rm is a reward model \(LlamaForSequenceClassification\); a teacher must be a causal LM$/),
        expect.stringMatching(/^line 5: reward\[0\]\.model: .*\/rm has no tokenizer\.json/),
        expect.stringMatching(/^line 5: reward\[1\]\.model: .*hf-llama-gqa-f32\/config\.json describes LlamaForCausalLM, a causal language model with an lm_head, not a reward model/),
        expect.stringMatching(/^line 5: reward\[2\]\.model: .*\/nowhere does not exist \(relative paths are read from the plan's folder/)
      ])
      const asModel = yield* problemsOf(plan(join(folder, "rm"), ""), folder)
      expect(asModel).toEqual([expect.stringMatching(/^line 1: model: .*\/rm is a reward model \(LlamaForSequenceClassification\), not a causal LM to compress/)])
    }))
})
