/**
 * `simmer eval` as a user meets it (issue 14.7, 14.15): a JSONL file handed over is scored
 * whole, a part of it only on request, zero examples is an error, and a file or a missing
 * folder given as the checkpoint gets the same message as in every other command.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { splitOf } from "../../src/tasks/Task.ts"
import { useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { messages, simmer } from "../helpers/cli.ts"

const dir = mkdtempSync(join(tmpdir(), "simmer-eval-cli-"))
const model = join(dir, "model")

/** `count` prompt-completion lines whose prompts the hash split puts into `split` (or anywhere but it). */
const lines = (count: number, keep: (split: string) => boolean) => {
  const out: Array<string> = []
  for (let i = 0; out.length < count; i++) {
    const prompt = `f(x)=x*${i}\n`
    if (keep(splitOf(prompt))) out.push(JSON.stringify({ prompt, completion: `x${i}*` }))
  }
  return out.join("\n") + "\n"
}

beforeAll(async () => {
  await useBackend("cpu")
  await Effect.runPromise(writeTinyCheckpoint(model))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("simmer eval on a JSONL file", () => {
  it("scores every line by default, and refuses an empty --split instead of printing 0/0", async () => {
    // Five lines, none of them in the hash split's test part: before, this scored 0/0 with exit 0.
    const file = join(dir, "five.jsonl")
    writeFileSync(file, lines(5, (split) => split !== "test"))
    const [whole, test] = await Promise.all([
      simmer(["eval", model, "--task", file, "--json"]),
      simmer(["eval", model, "--task", file, "--split", "test"])
    ])
    expect(whole.status, whole.stderr).toBe(0)
    const metrics = JSON.parse(whole.stdout) as { examples: number; split: string }
    expect([metrics.examples, metrics.split]).toEqual([5, "all"])
    expect(test.status).toBe(1)
    expect(messages(test)).toEqual([
      `simmer: ${file} has no examples in its test split: its 5 records are divided 80/10/10 by a hash of each prompt, ` +
      "and none fell into test. Leave out --split to evaluate the whole file."
    ])
  }, 60_000)
})

describe("simmer eval on a built-in task", () => {
  it("computes the same perplexity on ONNX Runtime as block by block on tfjs", async () => {
    const run = (inference: string) => simmer(["eval", model, "--task", "general", "--examples", "6", "--inference", inference, "--json"])
    const [tfjs, ort] = await Promise.all([run("tfjs"), run("ort")])
    expect(tfjs.status, tfjs.stderr).toBe(0)
    expect(ort.status, ort.stderr).toBe(0)
    const [a, b] = [tfjs, ort].map((r) => JSON.parse(r.stdout) as { perplexity: number; examples: number })
    expect(b.examples).toBe(6)
    expect(Math.abs(b.perplexity / a.perplexity - 1)).toBeLessThan(1e-5)
  }, 60_000)

  it("calls the program task's score pass@1, and names the built-in tasks for a --task that is neither one nor a file", async () => {
    const [program, typo] = await Promise.all([
      simmer(["eval", model, "--task", "program", "--examples", "2"]),
      simmer(["eval", model, "--task", "arithmetic"], { cwd: dir })
    ])
    expect(program.status, program.stderr).toBe(0)
    expect(program.stdout).toMatch(/^program \(test split\): pass@1 \d+\.\d% \(\d\/2\)/)
    expect(typo.status).toBe(1)
    expect(messages(typo)).toEqual([
      `simmer: --task arithmetic is neither a built-in task (arith, program, sort, reverse, count, compare, lookup, units or general) nor a JSONL file (${join(dir, "arithmetic")} does not exist); did you mean arith?`
    ])
  }, 60_000)
})

describe("a checkpoint argument that is not a checkpoint folder", () => {
  it("gets inspect's message in eval too (was ENOTDIR, and 'has no tokenizer' for a missing folder)", async () => {
    const file = join(dir, "one.jsonl")
    writeFileSync(file, lines(1, () => true))
    const missing = join(dir, "nowhere")
    const [evalFile, evalMissing] = await Promise.all([simmer(["eval", file]), simmer(["eval", missing])])
    for (const result of [evalFile, evalMissing]) expect(result.status).toBe(1)
    // The texts `simmer inspect` prints for the same mistakes (src/io/CheckpointFolder.ts); prune and
    // score open checkpoints through the same openCheckpoint (test/io/OpenCheckpoint.test.ts).
    expect(messages(evalFile)).toEqual([`simmer: ${file} is a file, not a checkpoint folder.`])
    expect(messages(evalMissing)).toEqual([`simmer: The checkpoint folder ${missing} does not exist.`])
  }, 60_000)
})

describe("graded evaluation that does not fit the device at its batch size (issue 24.7)", () => {
  it("decodes fewer sequences at a time, and refuses with the numbers when not even one fits", async () => {
    // A 0.5B model's 64-sequence prompt pass over a 151,936-token vocabulary overran the wasm
    // heap ("memory access out of bounds", exit 70); here a tiny model meets a tiny budget.
    const [lowered, refused] = await Promise.all([
      simmer(["eval", model, "--task", "arith", "--examples", "8", "--batch-size", "8", "--memory", "0.001", "--json"]),
      simmer(["eval", model, "--task", "arith", "--examples", "8", "--memory", "0.0002"])
    ])
    expect(lowered.status, lowered.stderr).toBe(0)
    expect(JSON.parse(lowered.stdout)).toMatchObject({ examples: 8 })
    expect(messages(lowered).filter((line) => line.startsWith("[warn]"))).toEqual([
      expect.stringMatching(/^\[warn\] evaluation decodes [1-7] sequences? at a time instead of 8: 8 sequences of up to \d+ tokens would need about [\d.]+ MiB beside the model$/)
    ])
    expect(refused.status).toBe(1)
    expect(messages(refused)).toEqual([
      expect.stringMatching(/^simmer: Decoding 1 sequence of up to \d+ tokens needs about [\d.]+ (KiB|MiB) of tensor memory, but only [\d.]+ KiB of the [\d.]+ KiB host memory budget is free \([\d.]+ KiB in use\)\. Evaluate a smaller model, raise --memory/)
    ])
  }, 60_000)
})
