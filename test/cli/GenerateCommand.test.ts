/**
 * `simmer generate` as a user meets it (issue 14.9): the help's examples are in the bundled
 * model's format and give the answers they promise; a prompt longer than the model's positions
 * is refused; generation stops at them with a warning; characters the tokenizer does not know
 * are named.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { bundledModelExamples } from "../../src/cli/GenerateCommand.ts"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { loadTokenizer } from "../../src/io/Tokenizer.ts"
import { generate } from "../../src/model/Generate.ts"
import { disposeParams } from "../../src/model/Params.ts"
import { useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { messages, root, simmer } from "../helpers/cli.ts"

const dir = mkdtempSync(join(tmpdir(), "simmer-generate-cli-"))
const model = join(dir, "model")

beforeAll(async () => {
  await useBackend("cpu")
  await Effect.runPromise(writeTinyCheckpoint(model)) // 128 positions, the built-in tasks' character tokenizer
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("simmer generate", () => {
  it("the help's examples give the bundled model's answers (greedy, as the command decodes)", async () => {
    const base = join(root, "models/base")
    const checkpoint = await Effect.runPromise(loadCheckpoint(base))
    const tokenizer = await Effect.runPromise(loadTokenizer(base))
    try {
      for (const example of bundledModelExamples) {
        const ids = (await Effect.runPromise(generate(checkpoint.config, checkpoint.params, [tokenizer.encode(example.prompt, { addSpecialTokens: true })], {
          temperature: 0,
          topP: 1,
          maxNewTokens: 32,
          stopTokens: [tokenizer.eosId!]
        })))[0]
        expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe(example.answer)
      }
    } finally {
      disposeParams(checkpoint.config, checkpoint.params)
    }
  })

  it("refuses a prompt as long as the model's positions, stops at them with a warning, names unknown characters", async () => {
    const [long, capped] = await Promise.all([
      simmer(["generate", model, "--prompt", "1".repeat(127)]), // 127 characters + <bos> = 128 positions
      simmer(["generate", model, "--prompt", `Tom ${"2".repeat(95)}`, "--max-new-tokens", "500", "--ignore-eos", "--json"])
    ])
    expect(long.status).toBe(1)
    expect(messages(long)).toEqual([
      `simmer: The prompt is 128 tokens, but ${model} sees at most 128 (max_position_embeddings in its config.json), ` +
      "which leaves no room to generate; shorten the prompt."
    ])
    expect(capped.status, capped.stderr).toBe(0)
    const out = JSON.parse(capped.stdout) as { prompt_ids: Array<number>; generated_ids: Array<number>; stopped: string }
    expect(out.prompt_ids.length).toBe(100)
    expect(out.generated_ids.length).toBe(28)
    expect(out.stopped).toBe("max-positions")
    expect(messages(capped)).toEqual([
      `[warn] the tokenizer of ${model} does not know "T": the model sees the unknown token for it.`,
      `[warn] stopped after 28 new tokens: prompt (100) and generation reached the 128 positions ${model} was built for ` +
      "(max_position_embeddings)."
    ])
  }, 60_000)
})
