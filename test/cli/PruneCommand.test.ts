/**
 * `simmer prune` sizes (issue 14.13): `--keep-params` means a share of the non-embedding
 * parameters, as a plan's target does, also with global allocation (where `--target 0.5` once
 * ended at 60%), and the share reached is always printed.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadCheckpoint } from "../../src/io/CheckpointReader.ts"
import { countParams, disposeParams } from "../../src/model/Params.ts"
import { useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { simmer } from "../helpers/cli.ts"

const dir = mkdtempSync(join(tmpdir(), "simmer-prune-cli-"))
const model = join(dir, "model")

beforeAll(async () => {
  await useBackend("cpu")
  await Effect.runPromise(writeTinyCheckpoint(model))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const nonEmbedding = async (path: string) => {
  const checkpoint = await Effect.runPromise(loadCheckpoint(path))
  disposeParams(checkpoint.config, checkpoint.params)
  return countParams(checkpoint.config).nonEmbedding
}

describe("simmer prune --keep-params", () => {
  it("keeps at most that share of the non-embedding parameters with global allocation, and says how much", async () => {
    const out = join(dir, "half")
    const result = await simmer(["prune", model, "--out", out, "--keep-params", "0.5", "--allocation", "global", "--examples", "8"])
    expect(result.status, result.stderr).toBe(0)
    const original = await nonEmbedding(model)
    const share = (await nonEmbedding(out)) / original
    expect(share).toBeLessThanOrEqual(0.5)
    // Within one neuron per layer (2 layers; a neuron is 3 × 16 parameters) of the target.
    expect(share).toBeGreaterThan(0.5 - (2 * 3 * 16) / original)
    expect(result.stdout).toContain(`kept ${(share * 100).toFixed(1)}% of the non-embedding parameters (asked: at most 50.0% of them)`)
  }, 60_000)
})
