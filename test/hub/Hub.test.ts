/**
 * Models and datasets by Hub id, against a loopback Hub: the cache laid out as Python's
 * huggingface_hub lays it out (and read when Python wrote it), downloads resumed and verified,
 * and every failure a user can meet named with what to do.
 */
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises"
import { createHash } from "node:crypto"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect, Exit } from "effect"
import { parquetWriteBuffer } from "hyparquet-writer"
import { afterEach, describe, expect, it } from "vitest"
import { loadHubDataset } from "../../src/hub/HubDataset.ts"
import type { HubError } from "../../src/hub/HubError.ts"
import { parseHubId } from "../../src/hub/HubId.ts"
import { fetchModel } from "../../src/hub/HubModel.ts"
import { type FakeHub, type FakeRepo, startFakeHub } from "../helpers/hub.ts"

const base = join(import.meta.dirname, "../../models/base")
const commit = "1".repeat(40)
const oldCommit = "2".repeat(40)

const modelFiles = async () => {
  const files: Record<string, Uint8Array> = {}
  for (const name of await readdir(base)) files[name] = await readFile(join(base, name))
  return files
}

const tinyModel = async (overrides: Partial<FakeRepo> = {}): Promise<FakeRepo> => ({
  kind: "model",
  repo: "simmer-tests/tiny",
  commit,
  refs: { v1: oldCommit },
  files: await modelFiles(),
  ...overrides
})

const gsm8kRows = (n: number, offset = 0) => ({
  question: Array.from({ length: n }, (_, i) => `what is ${i + offset} plus 1?`),
  answer: Array.from({ length: n }, (_, i) => `${i + offset} + 1 = ${i + offset + 1}\n#### ${i + offset + 1}`)
})

const parquetOf = (columns: Record<string, ReadonlyArray<string>>) =>
  new Uint8Array(parquetWriteBuffer({ columnData: Object.entries(columns).map(([name, data]) => ({ name, data: [...data], type: "STRING" as const })) }))

const gsm8k: FakeRepo = {
  kind: "dataset",
  repo: "simmer-tests/gsm8k",
  commit,
  files: {
    "README.md": "# a dataset\n",
    "main/train-00000-of-00001.parquet": parquetOf(gsm8kRows(40)),
    "main/test-00000-of-00001.parquet": parquetOf(gsm8kRows(10, 1000)),
    "socratic/train-00000-of-00001.parquet": parquetOf(gsm8kRows(5))
  }
}

let hub: FakeHub | undefined
let cache: string
afterEach(async () => {
  await hub?.close()
  hub = undefined
})

const run = <A, E>(effect: Effect.Effect<A, E>, env: Record<string, string> = {}) =>
  Effect.runPromiseExit(
    effect.pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: { HF_ENDPOINT: hub?.url ?? "http://127.0.0.1:9", HF_HUB_CACHE: cache, ...env } })))
  )

const failure = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const error = (exit.cause as unknown as { reasons: Array<{ error?: unknown }> }).reasons?.[0]?.error as HubError | undefined
  if (error === undefined) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return error
}

const success = <A>(exit: Exit.Exit<A, unknown>): A => {
  if (Exit.isFailure(exit)) throw new Error(`expected a success, got ${String(exit.cause)}`)
  return exit.value
}

const fresh = async () => {
  cache = await mkdtemp(join(tmpdir(), "simmer-hub-"))
}

describe("Hub ids", () => {
  it("takes org/name and org/name@revision, and refuses what the Hub would", () => {
    expect(parseHubId("Qwen/Qwen2.5-0.5B-Instruct")).toEqual({ repo: "Qwen/Qwen2.5-0.5B-Instruct", revision: undefined })
    expect(parseHubId("openai/gsm8k@refs/convert/parquet")).toEqual({ repo: "openai/gsm8k", revision: "refs/convert/parquet" })
    expect(parseHubId(`org/name@${commit}`)?.revision).toBe(commit)
    for (const bad of ["", "gpt2", "a/b/c", "../x/y", "/abs/path", "org/name@", "org--x/name", "org/na..me", "org/name@../../etc", "-org/name", "org/name@x/"]) {
      expect(parseHubId(bad), bad).toBeUndefined()
    }
  })
})

describe("models by id", () => {
  it("fetches a checkpoint into the cache as huggingface_hub lays it out, and reuses it", async () => {
    await fresh()
    hub = await startFakeHub([await tinyModel()])
    const snapshot = success(await run(fetchModel(parseHubId("simmer-tests/tiny")!)))
    const repoDir = join(cache, "models--simmer-tests--tiny")
    expect(snapshot).toMatchObject({ dir: join(repoDir, "snapshots", commit), commit })
    expect((await readFile(join(repoDir, "refs", "main"), "utf8")).trim()).toBe(commit)
    const weights = await readFile(join(base, "model.safetensors"))
    const config = await readFile(join(base, "config.json"))
    const sha256 = createHash("sha256").update(weights).digest("hex")
    const gitSha1 = createHash("sha1").update(`blob ${config.length}\0`).update(config).digest("hex")
    expect(await readlink(join(snapshot.dir, "model.safetensors"))).toBe(`../../blobs/${sha256}`)
    expect(await readlink(join(snapshot.dir, "config.json"))).toBe(`../../blobs/${gitSha1}`)
    expect(await readFile(join(snapshot.dir, "model.safetensors"))).toEqual(weights)
    expect((await readdir(join(repoDir, "blobs"))).some((f) => f.endsWith(".incomplete"))).toBe(false)

    const downloads = () => hub!.requests.filter((r) => r.includes("/resolve/") || r.includes("/cdn/")).length
    const before = downloads()
    expect(Exit.isSuccess(await run(fetchModel(parseHubId("simmer-tests/tiny")!)))).toBe(true)
    expect(downloads()).toBe(before)
  })

  it("reads a cache Python wrote, offline, without a request", async () => {
    await fresh()
    const repoDir = join(cache, "models--simmer-tests--tiny")
    await mkdir(join(repoDir, "blobs"), { recursive: true })
    await mkdir(join(repoDir, "refs"), { recursive: true })
    await mkdir(join(repoDir, "snapshots", commit), { recursive: true })
    await writeFile(join(repoDir, "refs", "main"), commit) // huggingface_hub writes no newline
    for (const [name, bytes] of Object.entries(await modelFiles())) {
      const etag = createHash("sha256").update(bytes).digest("hex")
      await writeFile(join(repoDir, "blobs", etag), bytes)
      await symlink(`../../blobs/${etag}`, join(repoDir, "snapshots", commit, name))
    }
    const exit = await run(fetchModel(parseHubId("simmer-tests/tiny")!), { HF_HUB_OFFLINE: "1" })
    expect(Exit.isSuccess(exit) && exit.value.dir).toBe(join(repoDir, "snapshots", commit))

    const missing = failure(await run(fetchModel(parseHubId("simmer-tests/other")!), { HF_HUB_OFFLINE: "1" }))
    expect(missing.reason).toBe("not-cached")
    expect(missing.message).toMatch(/simmer-tests\/other: revision main is not in the Hub cache .* HF_HUB_OFFLINE/)
  })

  it("pins a branch or tag to its commit", async () => {
    await fresh()
    hub = await startFakeHub([await tinyModel()])
    const exit = await run(fetchModel(parseHubId("simmer-tests/tiny@v1")!))
    expect(Exit.isSuccess(exit) && exit.value.commit).toBe(oldCommit)
    expect((await readFile(join(cache, "models--simmer-tests--tiny", "refs", "v1"), "utf8")).trim()).toBe(oldCommit)
  })

  it("continues a cut transfer with a range request, within a run and across runs", async () => {
    await fresh()
    hub = await startFakeHub([await tinyModel()], { truncateOnce: ["model.safetensors"] })
    const { dir } = success(await run(fetchModel(parseHubId("simmer-tests/tiny")!)))
    const weights = await readFile(join(base, "model.safetensors"))
    expect(await readFile(join(dir, "model.safetensors"))).toEqual(weights)
    expect(hub.requests.some((r) => /\/cdn\/.*model\.safetensors bytes=[1-9]\d*-/.test(r))).toBe(true)

    // A partial file left by an earlier process is continued, not started over.
    await fresh()
    const repoDir = join(cache, "models--simmer-tests--tiny")
    const sha256 = createHash("sha256").update(weights).digest("hex")
    await mkdir(join(repoDir, "blobs"), { recursive: true })
    await writeFile(join(repoDir, "blobs", `${sha256}.incomplete`), weights.subarray(0, 1000))
    hub.requests.length = 0
    expect(Exit.isSuccess(await run(fetchModel(parseHubId("simmer-tests/tiny")!)))).toBe(true)
    expect(hub.requests.filter((r) => r.includes("/cdn/") && r.includes("model.safetensors") && !r.endsWith("bytes=0-0"))).toEqual([
      `GET /cdn/models/simmer-tests/tiny/${commit}/model.safetensors bytes=1000-${weights.length - 1}`
    ])
  })

  it("refuses bytes that do not match the Hub's hash, and keeps nothing of them", async () => {
    await fresh()
    hub = await startFakeHub([await tinyModel()], { corrupt: ["model.safetensors"] })
    const error = failure(await run(fetchModel(parseHubId("simmer-tests/tiny")!)))
    expect(error.reason).toBe("checksum-mismatch")
    expect(error.message).toMatch(/simmer-tests\/tiny: model.safetensors does not match the Hub's sha256/)
    const blobs = await readdir(join(cache, "models--simmer-tests--tiny", "blobs"))
    expect(blobs.filter((b) => b.endsWith(".incomplete") || b.length === 64)).toEqual([])
    expect(blobs.every((b) => b.length === 40)).toBe(true) // only the small files' git-hashed blobs
  })

  it("downloads a file once when two fetch it at the same time", async () => {
    await fresh()
    hub = await startFakeHub([await tinyModel()])
    const [a, b] = await Promise.all([run(fetchModel(parseHubId("simmer-tests/tiny")!)), run(fetchModel(parseHubId("simmer-tests/tiny")!))])
    const weights = await readFile(join(base, "model.safetensors"))
    for (const exit of [a, b]) expect(await readFile(join(success(exit).dir, "model.safetensors"))).toEqual(weights)
    const transfers = hub.requests.filter((r) => r.startsWith("GET /cdn/") && r.includes("model.safetensors") && !r.endsWith("bytes=0-0"))
    expect(transfers.length).toBe(1)
    expect((await readdir(join(cache, "models--simmer-tests--tiny", "blobs"))).filter((f) => f.endsWith(".lock") || f.endsWith(".incomplete"))).toEqual([])
  })

  it("says so when the disk fills, and what to do", async () => {
    await fresh()
    hub = await startFakeHub([await tinyModel()])
    const weights = await readFile(join(base, "model.safetensors"))
    const blobs = join(cache, "models--simmer-tests--tiny", "blobs")
    await mkdir(blobs, { recursive: true })
    // Every write to /dev/full fails with ENOSPC, as on a full disk.
    await symlink("/dev/full", join(blobs, `${createHash("sha256").update(weights).digest("hex")}.incomplete`))
    const full = failure(await run(fetchModel(parseHubId("simmer-tests/tiny")!)))
    expect(full.reason).toBe("disk-full")
    expect(full.message).toMatch(/simmer-tests\/tiny: the disk holding the Hub cache \(.*\) is full; free space and run again .* or set HF_HUB_CACHE/)
  })

  it("names what is wrong: unknown id, unknown revision, gated, no safetensors, no network", async () => {
    await fresh()
    const files = await modelFiles()
    const { "model.safetensors": weights, ...rest } = files
    hub = await startFakeHub([
      await tinyModel(),
      await tinyModel({ repo: "simmer-tests/gated", token: "hf_secret" }),
      { kind: "model", repo: "simmer-tests/pickles", commit, files: { ...rest, "pytorch_model.bin": weights } }
    ])
    const reasonOf = async (id: string, env: Record<string, string> = {}) => failure(await run(fetchModel(parseHubId(id)!), env))

    const unknown = await reasonOf("simmer-tests/nope")
    expect([unknown.reason, unknown.message]).toEqual(["repo-not-found", "simmer-tests/nope: no such model on the Hub (404); check the id (org/name)."])
    const revision = await reasonOf("simmer-tests/tiny@v9")
    expect(revision.reason).toBe("revision-not-found")
    expect(revision.message).toMatch(/has no revision "v9"/)
    const gated = await reasonOf("simmer-tests/gated")
    expect(gated.reason).toBe("unauthorized")
    expect(gated.message).toMatch(/set HF_TOKEN/)
    expect((await reasonOf("simmer-tests/gated", { HF_TOKEN: "hf_wrong" })).message).toMatch(/with HF_TOKEN \(401\)/)
    expect(Exit.isSuccess(await run(fetchModel(parseHubId("simmer-tests/gated")!), { HF_TOKEN: "hf_secret" }))).toBe(true)
    const pickles = await reasonOf("simmer-tests/pickles")
    expect(pickles.reason).toBe("pickle-only")
    expect(pickles.message).toMatch(/pytorch_model.bin.*never unpickles/)
    expect(hub.requests.some((r) => r.includes("pytorch_model.bin"))).toBe(false)

    const url = hub.url
    await hub.close()
    hub = undefined
    const offline = failure(await run(fetchModel(parseHubId("simmer-tests/tiny")!), { HF_ENDPOINT: url }))
    expect(offline.reason).toBe("unreachable")
    expect(offline.message).toMatch(/cannot reach the Hub at http:\/\/127.0.0.1:\d+ .*HF_HUB_OFFLINE=1/)
  })
})

describe("datasets by id", () => {
  it("reads a config and split from Parquet, with a limit and column mapping", async () => {
    await fresh()
    hub = await startFakeHub([gsm8k, {
      kind: "dataset",
      repo: "simmer-tests/renamed",
      commit,
      files: { "data/train-00000-of-00001.parquet": parquetOf({ problem: ["what is 1 plus 1?"], solution: ["1 + 1 = 2\n#### 2"] }) }
    }])
    const loaded = success(await run(loadHubDataset({ hub: "simmer-tests/gsm8k", config: "main", split: "train", limit: 25 })))
    expect(loaded.format).toBe("question-answer")
    expect(loaded.records.length).toBe(25)
    expect(loaded.records[3].record).toEqual({ question: "what is 3 plus 1?", answer: "3 + 1 = 4\n#### 4" })
    expect(hub.requests.some((r) => r.includes("socratic") || r.includes("test-0000"))).toBe(false)
    expect((await readdir(join(cache, "datasets--simmer-tests--gsm8k", "snapshots", commit, "main")))).toEqual(["train-00000-of-00001.parquet"])

    const test = await run(loadHubDataset({ hub: "simmer-tests/gsm8k", config: "main", split: "test" }))
    expect(Exit.isSuccess(test) && test.value.records.length).toBe(10)

    const wrongSplit = failure(await run(loadHubDataset({ hub: "simmer-tests/gsm8k", config: "main", split: "validation" })))
    expect([wrongSplit.reason, wrongSplit.message]).toEqual(["no-parquet", "simmer-tests/gsm8k: config \"main\" has no split \"validation\"; its splits: test, train."])
    const noConfig = failure(await run(loadHubDataset({ hub: "simmer-tests/gsm8k", split: "train" })))
    expect(noConfig.message).toMatch(/several configs \(main, socratic\): add config:/)

    const unmapped = await run(loadHubDataset({ hub: "simmer-tests/renamed", split: "train" }))
    expect(Exit.isFailure(unmapped) && String(unmapped.cause)).toMatch(/no "question", "prompt" or "text" key \(keys: problem, solution\).*columns:/)
    const mapped = await run(loadHubDataset({ hub: "simmer-tests/renamed", split: "train", columns: { question: "problem", answer: "solution" } }))
    expect(Exit.isSuccess(mapped) && mapped.value.records[0].record).toEqual({ question: "what is 1 plus 1?", answer: "1 + 1 = 2\n#### 2" })
  })
})

afterEach(async () => {
  if (cache !== undefined) await rm(cache, { recursive: true, force: true })
})
