/**
 * `simmer plan check` as a user meets it (issue 14.10-12): every problem at once, in words, with
 * its line — unknown keys with the key meant, data files and the model folder that do not
 * exist, a target the plan's units cannot reach — and relative paths read from the plan's
 * folder, wherever simmer is started.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { messages, simmer } from "../helpers/cli.ts"

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
  writeFileSync(join(dir, "plans", "data", "train.jsonl"), `{"text": "a b c"}\n`)
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
