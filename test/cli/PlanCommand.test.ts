/**
 * `simmer plan check` as a user meets it (issue 14.10-12): every problem at once, in words, with
 * its line — unknown keys with the key meant, data files and the model folder that do not
 * exist, a target the plan's units cannot reach — and relative paths read from the plan's
 * folder, wherever simmer is started.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { messages, root, simmer } from "../helpers/cli.ts"

const dir = mkdtempSync(join(tmpdir(), "simmer-plan-cli-"))

const plan = (lines: string) => `model: ../model
data:
  tune: [{ file: data/train.jsonl }]
  calibration: [{ task: arith }]
  evaluate: [{ task: arith }]
${lines}`

beforeAll(async () => {
  await useBackend("cpu")
  await Effect.runPromise(writeTinyCheckpoint(join(dir, "model")))
  mkdirSync(join(dir, "plans", "data"), { recursive: true })
  // Enough lines that the hash split gives the training part some: `run` refuses a plan with nothing to tune on.
  const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: `a b c ${i}` }))
  writeFileSync(join(dir, "plans", "data", "train.jsonl"), lines.join("\n") + "\n")
  writeFileSync(join(dir, "plans", "data", "broken.jsonl"), [lines[0], `{"text": "a b`, ...lines.slice(1)].join("\n") + "\n")
  // A reward model whose tokenizer has an id (100) beyond its 96-token vocabulary.
  cpSync(join(root, "test/fixtures/hf-llama-reward-f32"), join(dir, "rm"), { recursive: true })
  const tokenizer = JSON.parse(readFileSync(join(root, "models/base/tokenizer.json"), "utf8")) as { added_tokens: Array<object> }
  tokenizer.added_tokens.push({ id: 100, content: "<tool>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })
  writeFileSync(join(dir, "rm", "tokenizer.json"), JSON.stringify(tokenizer))
  writeFileSync(join(dir, "plans", "good.yaml"), plan("target: { parameters: 0.6 }\n"))
  writeFileSync(
    join(dir, "plans", "bad.yaml"),
    plan("target: { parameters: 0.5 }\nunit: heads\niteration: 3\nscorer: wanda\n").replace("data/train.jsonl", "data/tain.jsonl")
  )
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("simmer plan check", () => {
  it("reads relative paths from the plan's folder, and lists every problem of a bad plan at once", async () => {
    // Started from another folder than the plan's: the paths must still resolve against the plan.
    const [good, bad] = await Promise.all([
      simmer(["plan", "check", join(dir, "plans", "good.yaml")], { cwd: tmpdir() }),
      simmer(["plan", "check", join(dir, "plans", "bad.yaml")], { cwd: tmpdir() })
    ])
    expect(good.status, good.stderr).toBe(0)
    expect(good.stdout).toContain(`is valid: ${join(dir, "model")} → 60% of the non-embedding parameters`)
    expect(bad.status).toBe(1)
    const lines = messages(bad)
    expect(lines[0]).toBe(`simmer: ${join(dir, "plans", "bad.yaml")} is not a valid plan (4 problems):`)
    expect(lines.slice(1)).toEqual([
      `  line 3: data.tune[0].file: ${join(dir, "plans", "data", "tain.jsonl")} does not exist (relative paths are read from ` +
      `the plan's folder, ${join(dir, "plans")})`,
      expect.stringMatching(/^ {2}line 6: target\.parameters: 50\.0% of the non-embedding parameters cannot be reached by removing heads alone: with one key\/value group per layer left, \d+\.\d% remains/),
      '  line 8: iteration: unknown key "iteration"; did you mean iterations?',
      '  line 9: scorer: "wanda" cannot score heads; choose one of contribution, random'
    ])
  }, 60_000)
})

describe("plan check runs the checks simmer run makes before it starts (issue 24.8)", () => {
  it("refuses a plan over the memory budget, a tuning file with a broken line, and a reward model's tokenizer beyond its vocabulary", async () => {
    writeFileSync(join(dir, "plans", "broken.yaml"), plan("target: { parameters: 0.6 }\n").replace("data/train.jsonl", "data/broken.jsonl"))
    writeFileSync(
      join(dir, "plans", "reward.yaml"),
      plan("target: { parameters: 0.6 }\ntuner: { kind: grpo, steps: 1 }\nreward: [{ model: ../rm }]\n")
    )
    const good = join(dir, "plans", "good.yaml")
    const out = join(dir, "runs", "reward")
    const [budget, broken, reward, run] = await Promise.all([
      simmer(["plan", "check", good, "--memory", "0.0001"]),
      simmer(["plan", "check", join(dir, "plans", "broken.yaml")]),
      simmer(["plan", "check", join(dir, "plans", "reward.yaml")]),
      // Before, run loaded this reward model and died after iteration 0.
      simmer(["run", join(dir, "plans", "reward.yaml"), "--out", out])
    ])
    expect(budget.status).toBe(1)
    expect(messages(budget)).toEqual([
      expect.stringMatching(/^simmer: This plan on .*\/model needs about [\d.]+ MiB of (host memory|wasm heap) at its peak \(.*\), but the budget is 105 KiB\. /)
    ])
    expect(broken.status).toBe(1)
    expect(messages(broken)).toEqual([expect.stringContaining(`${join(dir, "plans", "data", "broken.jsonl")}, line 2: not valid JSON`)])
    const tokenizerProblem = `  line 8: reward[0].model: ${join(dir, "rm", "tokenizer.json")} has ids up to 100, beyond the 96-token vocabulary ` +
      `of the reward model (vocab_size in ${join(dir, "rm", "config.json")}): text that reaches them cannot be embedded`
    for (const refused of [reward, run]) {
      expect(refused.status).toBe(1)
      expect(messages(refused).slice(1)).toEqual([tokenizerProblem])
    }
    expect(existsSync(out)).toBe(false)
  }, 60_000)
})

describe("a GRPO plan over the memory budget (issue 24.9)", () => {
  it("is told to lower the keys GRPO has and its estimate grows with, and lowering them lowers the estimate", async () => {
    const grpo = (settings: string) =>
      plan(`target: { parameters: 0.6 }\ntuner: { kind: grpo, steps: 1, ${settings} }\nreward: [{ rule: arith }]\n`)
        .replace("{ file: data/train.jsonl }", "{ task: arith }")
    writeFileSync(join(dir, "plans", "grpo.yaml"), grpo("prompts: 8, rollouts: 8"))
    writeFileSync(join(dir, "plans", "grpo-fewer.yaml"), grpo("prompts: 2, rollouts: 8"))
    const [refused, fewer] = await Promise.all(
      ["grpo.yaml", "grpo-fewer.yaml"].map((name) => simmer(["plan", "check", join(dir, "plans", name), "--memory", "0.0001"]))
    )
    const needed = (result: { stderr: string }) => Number(/needs about ([\d.]+) MiB/.exec(result.stderr)?.[1])
    for (const result of [refused, fewer]) expect(result.status).toBe(1)
    const message = messages(refused).join("\n")
    // Before: "Lower tuner.batchSize or tuner.maxSeqLen ..., or tune through low-rank adapters (tuner.adapter ...)", keys GRPO rejects.
    expect(message).toContain("grpo tuning: gradients and activations (64 sequences)")
    expect(message).toContain("Lower tuner.prompts or tuner.rollouts (the gradient pass covers prompts × rollouts = 64 sequences at once")
    expect(message).not.toMatch(/tuner\.batchSize|tuner\.adapter/)
    expect(needed(fewer)).toBeLessThan(needed(refused) / 2)
  }, 60_000)
})

describe("adapters in a plan (issue 24.10)", () => {
  it("refuses a rank above the projections it adapts; plan check and the tuned events name the adapters", async () => {
    const adapter = (rank: number) =>
      plan(`target: { parameters: 0.6 }\niterations: 1\ntuner: { steps: 1, batchSize: 2, maxSeqLen: 48, adapter: { rank: ${rank}, targets: [q, v] } }\nbackend: cpu\n`)
        .replace("evaluate: [{ task: arith }]", "evaluate: [{ task: arith }]\n  calibrationExamples: 4\n  evaluationExamples: 4")
    writeFileSync(join(dir, "plans", "rank-9.yaml"), adapter(9))
    writeFileSync(join(dir, "plans", "rank-2.yaml"), adapter(2))
    const out = join(dir, "runs", "adapter")
    const [tooLarge, checked, run] = await Promise.all([
      simmer(["plan", "check", join(dir, "plans", "rank-9.yaml")]),
      simmer(["plan", "check", join(dir, "plans", "rank-2.yaml")]),
      simmer(["run", join(dir, "plans", "rank-2.yaml"), "--out", out, "--workers", "1"])
    ])
    // The tiny model's v projection is 16 × 8 (hidden size 16): rank 9 cannot be low-rank there.
    expect(tooLarge.status).toBe(1)
    expect(messages(tooLarge).slice(1)).toEqual([
      "  line 10: tuner.adapter.rank: rank 9 is above 8, the smaller side of the v projection (16 × 8; hidden size 16): " +
      "a low-rank adapter's rank is at most the sizes of the projections it adapts"
    ])
    expect(checked.status, checked.stderr).toBe(0)
    expect(checked.stdout).toContain("sft with rank-2 adapters on q, v 1 steps each")
    expect(run.status, run.stderr).toBe(0)
    const tuned = readFileSync(join(out, "events.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((e) => e.phase === "tuned")
    expect(tuned.length).toBeGreaterThan(0)
    for (const e of tuned) expect(e.tune).toMatchObject({ kind: "sft", adapter: { rank: 2, targets: ["q", "v"] } })
  }, 120_000)
})

describe("a reward rule that cannot grade the tuning data (issue 24.11)", () => {
  it("is refused when the plan is checked and run, naming the data; the rule that fits passes", async () => {
    const grpo = (rule: string, tune: string) =>
      plan(`target: { parameters: 0.6 }\ntuner: { kind: grpo, steps: 1 }\nreward: [{ rule: ${rule} }]\n`).replace("{ file: data/train.jsonl }", tune)
    writeFileSync(join(dir, "plans", "program-on-arith.yaml"), grpo("program", "{ task: arith }"))
    writeFileSync(join(dir, "plans", "arith-on-text.yaml"), grpo("arith", "{ file: data/train.jsonl }"))
    writeFileSync(join(dir, "plans", "arith-on-arith.yaml"), grpo("arith", "{ task: arith }"))
    const out = join(dir, "runs", "program-on-arith")
    const [programOnArith, arithOnText, fits, run] = await Promise.all([
      simmer(["plan", "check", join(dir, "plans", "program-on-arith.yaml")]),
      simmer(["plan", "check", join(dir, "plans", "arith-on-text.yaml")]),
      simmer(["plan", "check", join(dir, "plans", "arith-on-arith.yaml")]),
      simmer(["run", join(dir, "plans", "program-on-arith.yaml"), "--out", out])
    ])
    for (const refused of [programOnArith, run]) {
      expect(refused.status).toBe(1)
      expect(messages(refused)).toEqual([
        "simmer: The reward rule program grades the program task (programs run against its hidden tests), but GRPO would tune on " +
        "arith (data.tune): it would never pay its correct part, only its format part. Choose the rule that fits the data " +
        "(arith or question-answer for #### answers, program for the program task), or a reward model."
      ])
    }
    expect(existsSync(out)).toBe(false)
    expect(arithOnText.status).toBe(1)
    expect(messages(arithOnText)[0]).toContain(`but GRPO would tune on ${join(dir, "plans", "data", "train.jsonl")} (data.tune)`)
    expect(fits.status, fits.stderr).toBe(0)
  }, 60_000)
})

describe("a scorer per unit", () => {
  it("is checked unit by unit, each with its valid scorers; one scorer for several units that cannot score them all says how to name one each", async () => {
    writeFileSync(join(dir, "plans", "per-unit.yaml"), plan("target: { parameters: 0.6 }\nunit: [neurons, heads]\nscorer: { neurons: contribution, heads: wanda, layers: skip-loss }\n"))
    writeFileSync(join(dir, "plans", "one-for-all.yaml"), plan("target: { parameters: 0.6 }\nunit: [neurons, heads]\nscorer: wanda\n"))
    writeFileSync(join(dir, "plans", "per-unit-good.yaml"), plan("target: { parameters: 0.6 }\nunit: [neurons, heads]\nscorer: { neurons: wanda, heads: contribution }\n"))
    const [perUnit, oneForAll, good] = await Promise.all([
      simmer(["plan", "check", join(dir, "plans", "per-unit.yaml")]),
      simmer(["plan", "check", join(dir, "plans", "one-for-all.yaml")]),
      simmer(["plan", "check", join(dir, "plans", "per-unit-good.yaml")])
    ])
    expect(messages(perUnit).slice(1)).toEqual([
      '  line 8: scorer.neurons: "contribution" cannot score neurons; choose one of activation, contrastive, taylor, wanda, random',
      '  line 8: scorer.heads: "wanda" cannot score heads; choose one of contribution, random',
      "  line 8: scorer.layers: the plan does not prune layers (unit: neurons, heads); add layers to unit, or remove it here"
    ])
    expect(messages(oneForAll).slice(1)).toEqual([
      '  line 8: scorer: "wanda" cannot score heads; choose one of contribution, random, or name one per unit: scorer: { neurons: wanda, heads: contribution }'
    ])
    expect(good.status, good.stderr).toBe(0)
    expect(good.stdout).toContain("neurons (scorer wanda), heads (scorer contribution)")
  }, 60_000)
})
