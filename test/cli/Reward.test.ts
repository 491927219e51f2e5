/**
 * `simmer reward` and `simmer inspect` on a reward model, through the real CLI: the JSON
 * document carries transformers' score, and a causal LM is refused with exit code 1.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dirname, "../..")
const fixture = join(root, "test/fixtures/hf-llama-reward-f32")
const reference = JSON.parse(readFileSync(join(fixture, "reference.json"), "utf8")) as {
  inputs: Array<{ input_ids: Array<number>; score: number }>
}

const simmer = (...args: Array<string>) =>
  spawnSync(process.execPath, [join(root, "bin/simmer.js"), ...args, "--backend", "cpu"], { encoding: "utf8", timeout: 120_000 })

describe("simmer reward", () => {
  it("prints a JSON document whose numeric score is transformers' score", () => {
    const { input_ids, score } = reference.inputs[1]
    const result = simmer("reward", fixture, "--ids", input_ids.join(","), "--json")
    expect(result.status, result.stderr).toBe(0)
    const document = JSON.parse(result.stdout) as { score: unknown; results: Array<{ ids: Array<number> }> }
    expect(typeof document.score).toBe("number")
    expect(Math.abs((document.score as number) - score)).toBeLessThan(1e-5)
    expect(document.results[0].ids).toEqual(input_ids)
  })

  it("names the characters its tokenizer does not know, as generate does", () => {
    const judge = join(mkdtempSync(join(tmpdir(), "simmer-reward-")), "judge")
    cpSync(fixture, judge, { recursive: true })
    for (const file of ["tokenizer.json", "tokenizer_config.json"]) cpSync(join(root, "models/base", file), join(judge, file))
    const result = simmer("reward", judge, "--prompt", "what is 2+3?\n", "--completion", "Five")
    expect(result.status, result.stderr).toBe(0)
    expect(result.stderr).toContain(`[warn] the tokenizer of ${judge} does not know "F": the model sees the unknown token for it.`)
    rmSync(join(judge, ".."), { recursive: true, force: true })
  })

  it("refuses a causal LM with the reason, exit code 1", () => {
    const result = simmer("reward", join(root, "models/base"), "--ids", "1,2")
    expect(result.status).toBe(1)
    expect(result.stderr).toContain("not a reward model")
  })
})

describe("simmer inspect", () => {
  it("shows a sequence classifier as a reward model with its score head", () => {
    const result = simmer("inspect", fixture, "--json")
    expect(result.status, result.stderr).toBe(0)
    const summary = JSON.parse(result.stdout)
    expect(summary).toMatchObject({
      architecture: "LlamaForSequenceClassification",
      kind: "reward-model",
      score_head: [1, 64],
      pad_token_id: 95
    })
    expect(summary.parameters.lmHead).toBe(0)
    expect(summary.parameters.scoreHead).toBe(64)
  })
})
