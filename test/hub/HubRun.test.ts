/**
 * `simmer run` on a plan that names its model and data by Hub id, against a loopback Hub, as a
 * user runs it: the files land in the cache, run.json pins each id to its commit, and resume
 * reads those commits from the cache with the Hub gone.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { parquetWriteBuffer } from "hyparquet-writer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { builtinTask } from "../../src/tasks/Builtin.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { simmer } from "../helpers/cli.ts"
import { startDaemon, submit, waitForStatus } from "../helpers/daemon.ts"
import { type FakeHub, startFakeHub } from "../helpers/hub.ts"

const commit = "a".repeat(40)
const dataCommit = "b".repeat(40)

const arithParquet = (split: "train" | "test", count: number) => {
  const examples = builtinTask({ task: "arith" }).take(split, count)
  return new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: "question", data: examples.map((e) => e.prompt.replace(/\n$/, "")), type: "STRING" },
      { name: "answer", data: examples.map((e) => e.completion), type: "STRING" }
    ]
  }))
}

const plan = `
model: simmer-tests/tiny
target: { parameters: 0.6 }
iterations: 1
scorer: activation
data:
  tune: [{ hub: simmer-tests/arith, config: main, split: train }]
  calibration: [{ hub: simmer-tests/arith, config: main, split: train }]
  evaluate: [{ hub: simmer-tests/arith, config: main, split: test }]
  calibrationExamples: 4
  evaluationExamples: 2
tuner: { steps: 1, batchSize: 2, lr: 0.01, maxSeqLen: 48 }
backend: cpu
`

describe("a run by Hub id", () => {
  let hub: FakeHub
  let dir: string
  let env: Record<string, string>
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "simmer-hub-run-"))
    await Effect.runPromise(writeTinyCheckpoint(join(dir, "model")))
    const files: Record<string, Uint8Array> = {}
    for (const name of await readdir(join(dir, "model"))) files[name] = await readFile(join(dir, "model", name))
    hub = await startFakeHub([
      { kind: "model", repo: "simmer-tests/tiny", commit, files },
      {
        kind: "dataset",
        repo: "simmer-tests/arith",
        commit: dataCommit,
        files: { "main/train-00000-of-00001.parquet": arithParquet("train", 64), "main/test-00000-of-00001.parquet": arithParquet("test", 8) }
      }
    ])
    await writeFile(join(dir, "plan.yaml"), plan)
    env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: join(dir, "hub-cache") }
  })
  afterAll(async () => {
    await hub.close()
    await rm(dir, { recursive: true, force: true })
  })

  it("checks, runs and resumes a plan naming a model and a dataset by id", async () => {
    const checked = await simmer(["plan", "check", join(dir, "plan.yaml")], { env })
    expect(checked.status, checked.stderr).toBe(0)

    const run = await simmer(["run", join(dir, "plan.yaml"), "--out", join(dir, "run"), "--workers", "1"], { env })
    expect(run.status, run.stderr).toBe(0)
    const info = JSON.parse(await readFile(join(dir, "run", "run.json"), "utf8"))
    expect(info.modelPath).toBe(join(dir, "hub-cache", "models--simmer-tests--tiny", "snapshots", commit))
    expect(info.hub).toEqual([
      { kind: "model", id: "simmer-tests/tiny", commit },
      { kind: "dataset", id: "simmer-tests/arith", commit: dataCommit }
    ])
    const events = (await readFile(join(dir, "run", "events.ndjson"), "utf8")).trim().split("\n").map((l) => JSON.parse(l))
    expect(events.some((e) => e.phase === "finished")).toBe(true)

    // With the Hub gone, resume reads the pinned commits from the cache.
    const resumed = await simmer(["resume", join(dir, "run")], { env: { ...env, HF_ENDPOINT: "http://127.0.0.1:9", HF_HUB_OFFLINE: "1" } })
    expect(resumed.status, resumed.stderr).toBe(0)
    expect(resumed.stderr).toMatch(/already finished/)

    const inspected = await simmer(["inspect", "simmer-tests/tiny", "--json"], { env })
    expect(inspected.status, inspected.stderr).toBe(0)
    expect(JSON.parse(inspected.stdout).architecture).toBe("LlamaForCausalLM")

    const typo = await simmer(["inspect", "simmer-tests/tinny"], { env })
    expect(typo.status).toBe(1)
    expect(typo.stderr).toMatch(/simmer-tests\/tinny: no such model on the Hub \(404\)/)
  })

  it("reports a wrong split at plan check, with the splits there are", async () => {
    await writeFile(join(dir, "bad.yaml"), plan.replace("split: test", "split: validation"))
    const checked = await simmer(["plan", "check", join(dir, "bad.yaml")], { env })
    expect(checked.status).toBe(1)
    expect(checked.stderr).toMatch(/data.evaluate\[0\]: simmer-tests\/arith: config "main" has no split "validation"; its splits: test, train/)
  })

  it("is pinned by the daemon at submission, and runs from the cache", async () => {
    // The daemon in this process reads the Hub's settings from the environment, as `simmer serve` does.
    Object.assign(process.env, env)
    const cache = env.HF_HUB_CACHE
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const daemon = yield* startDaemon({ dataDir: join(dir, "daemon"), roots: [cache] })
      const created = yield* submit(daemon, plan)
      expect(created.status, created.text).toBe(201)
      yield* waitForStatus(daemon, created.body.id, ["finished"])
      const info = JSON.parse(yield* Effect.promise(() => readFile(join(dir, "daemon", "runs", created.body.id, "run.json"), "utf8")))
      expect(info.hub).toEqual([
        { kind: "model", id: "simmer-tests/tiny", commit },
        { kind: "dataset", id: "simmer-tests/arith", commit: dataCommit }
      ])
      const unknown = yield* submit(daemon, plan.replace("simmer-tests/tiny", "simmer-tests/tinny"))
      expect(unknown.status).toBe(400)
      expect(unknown.body.message).toMatch(/simmer-tests\/tinny: no such model on the Hub/)
    })))
  })
})
