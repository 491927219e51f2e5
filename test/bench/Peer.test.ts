import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { besidePeer, openBlasCoreType, parsePeerOutput, peerEnabled, peerEnvironment, peerShape, runPeer } from "../../bench/peer.ts"
import { parseOptions, referenceConfig } from "../../bench/common.ts"

// Lines as bench/peer/torch_baseline.py printed them on this machine (one thread, OpenBLAS).
const blas = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 (OpenBLAS, 1 threads)"
const shape = `"d_model": 128, "layers": 4, "heads": 4, "kv_heads": 4, "batch": 16, "seq": 64`
const base = `"framework": "torch", "device": "cpu", "params": 1057920, "threads": 1, "blas": "${blas}", ${shape}`
const train = `{${base}, "mode": "train", "tokens_per_s": 7431.7, "ms_per_step": 137.789, "loss_first": 3.5813, "loss_last": 3.6443}`
const generate = `{${base}, "mode": "infer_generate", "tokens_per_s": 4817.6, "ms_per_step": 3.321, "gen_batch": 16, "prompt": 16, "new_tokens": 48, "kv_max_abs_err": 9.5367431640625e-07}`
const forward = `{${base}, "mode": "infer_forward", "tokens_per_s": 23049.4, "ms_per_step": 44.426}`

describe("parsePeerOutput", () => {
  it("reads each result's mode, throughput and thread count", () => {
    const figures = parsePeerOutput(`${generate}\n${forward}\n`, ["infer_generate", "infer_forward"])
    expect(figures.infer_generate?.tokens_per_s).toBe(4817.6)
    expect(figures.infer_forward?.tokens_per_s).toBe(23049.4)
    expect(figures.infer_forward?.threads).toBe(1)
    expect(figures.train).toBeUndefined()
    expect(parsePeerOutput(train, ["train"]).train?.ms_per_step).toBe(137.789)
  })

  it("rejects truncated JSON", () => {
    expect(() => parsePeerOutput(train.slice(0, 120), ["train"])).toThrow(/line 1 is not JSON/)
  })

  it("rejects a line that is not JSON at all (the script prints none)", () => {
    expect(() => parsePeerOutput(`Warning: something\n${train}`, ["train"])).toThrow(/line 1 is not JSON/)
  })

  it("rejects a result without tokens_per_s", () => {
    const line = train.replace(`"tokens_per_s": 7431.7, `, "")
    expect(() => parsePeerOutput(line, ["train"])).toThrow(/tokens_per_s/)
  })

  it("rejects NaN (Python's json writes it as a bare word)", () => {
    const line = train.replace("7431.7", "NaN")
    expect(() => parsePeerOutput(line, ["train"])).toThrow(/not JSON/)
  })

  it("rejects a negative, zero or string throughput", () => {
    expect(() => parsePeerOutput(train.replace("7431.7", "-7431.7"), ["train"])).toThrow(/not a peer result/)
    expect(() => parsePeerOutput(train.replace("7431.7", "0"), ["train"])).toThrow(/not a peer result/)
    expect(() => parsePeerOutput(train.replace("7431.7", `"7431.7"`), ["train"])).toThrow(/not a peer result/)
  })

  it("rejects an unknown mode and another framework", () => {
    expect(() => parsePeerOutput(train.replace(`"mode": "train"`, `"mode": "infer"`), ["train"])).toThrow(/not a peer result/)
    expect(() => parsePeerOutput(train.replace(`"torch"`, `"jax"`), ["train"])).toThrow(/not a peer result/)
  })

  it("rejects a JSON value that is not an object", () => {
    expect(() => parsePeerOutput("[1, 2]", ["train"])).toThrow(/not a peer result/)
  })

  it("rejects a missing expected result and a repeated one", () => {
    expect(() => parsePeerOutput(generate, ["infer_generate", "infer_forward"])).toThrow(/lacks "infer_forward"/)
    expect(() => parsePeerOutput("", ["train"])).toThrow(/lacks "train"/)
    expect(() => parsePeerOutput(`${train}\n${train}`, ["train"])).toThrow(/two "train" results/)
  })
})

describe("runPeer", () => {
  it("says what to install when python is missing", async () => {
    const result = await runPeer({ config: referenceConfig, mode: "infer", threads: 1, batch: 2, seq: 8, python: "/nonexistent/python3" })
    expect(result.measured).toBe(false)
    if (!result.measured) {
      expect(result.reason).toMatch(/\/nonexistent\/python3 not found/)
      expect(result.reason).toMatch(/python3-torch libopenblas0-pthread/)
    }
  })

  it("refuses a shape the peer cannot build", async () => {
    const odd = { ...referenceConfig, headDim: 16 }
    expect(peerShape(odd)).toHaveProperty("unsupported")
    const result = await runPeer({ config: odd, mode: "train", threads: 1, batch: 2, seq: 8, python: "/nonexistent/python3" })
    expect(result).toMatchObject({ measured: false })
  })

  it("maps the reference model to the peer's flags", () => {
    expect(peerShape(referenceConfig)).toEqual({ dModel: 128, layers: 4, heads: 4, kvHeads: 4, ffn: 512, vocab: 32 })
  })
})

describe("besidePeer", () => {
  it("divides simmer's throughput by the peer's", () => {
    const figures = parsePeerOutput(train, ["train"])
    const peer = { measured: true as const, command: "", threads: 1, blas, figures }
    expect(besidePeer(3715.85, peer, "train")).toEqual({
      peer: { measured: true, mode: "train", threads: 1, tokensPerSecond: 7431.7 },
      ratioToPeer: 0.5
    })
    expect(besidePeer(100, peer, "infer_forward").peer.measured).toBe(false)
    expect(besidePeer(100, { measured: false, reason: "no torch" }, "train")).toEqual({ peer: { measured: false, reason: "no torch" } })
  })
})

describe("peerEnabled", () => {
  it("is on by default and off with --no-peer or --peer false", () => {
    expect(peerEnabled(parseOptions([]))).toBe(true)
    expect(peerEnabled(parseOptions(["--peer"]))).toBe(true)
    expect(peerEnabled(parseOptions(["--no-peer"]))).toBe(false)
    expect(peerEnabled(parseOptions(["--peer", "false"]))).toBe(false)
    expect(() => peerEnabled(parseOptions(["--peer", "maybe"]))).toThrow(/true or false/)
    expect(() => peerEnabled(parseOptions(["--peer", "--no-peer"]))).toThrow(/together/)
  })
})

describe("runPeer with a stand-in interpreter", () => {
  // A shell script in python's place: runPeer's handling of what an interpreter does, without torch.
  const dirs: Array<string> = []
  afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))
  const fake = (body: string): string => {
    const dir = mkdtempSync(join(tmpdir(), "simmer-peer-"))
    dirs.push(dir)
    const path = join(dir, "python3")
    writeFileSync(path, `#!/bin/sh\n${body}\n`)
    chmodSync(path, 0o755)
    return path
  }
  const request = { config: referenceConfig, mode: "train" as const, threads: 1, batch: 16, seq: 64 }

  it("says to install PyTorch when the import fails", async () => {
    const python = fake(`echo "ModuleNotFoundError: No module named 'torch'" >&2; exit 1`)
    const result = await runPeer({ ...request, python })
    expect(result).toEqual({ measured: false, reason: `PyTorch is not installed for ${python} (apt-get install -y python3-torch libopenblas0-pthread)` })
  })

  it("reports another failure with its stderr", async () => {
    const result = await runPeer({ ...request, python: fake(`echo "AssertionError: KV cache mismatch" >&2; exit 1`) })
    expect(result).toMatchObject({ measured: false, reason: expect.stringMatching(/exit 1.*KV cache mismatch/) })
  })

  it("reports malformed output as unmeasured, with the parser's reason", async () => {
    const result = await runPeer({ ...request, python: fake(`echo '{"framework": "torch"'`) })
    expect(result).toMatchObject({ measured: false, reason: expect.stringMatching(/line 1 is not JSON/) })
  })

  it("refuses a peer on the reference BLAS as unfair", async () => {
    const line = train.replace(blas, "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3")
    const result = await runPeer({ ...request, python: fake(`echo '${line}'`) })
    expect(result).toMatchObject({ measured: false, reason: expect.stringMatching(/reference BLAS.*libopenblas0-pthread/) })
  })

  it("refuses figures at another thread count than asked", async () => {
    const result = await runPeer({ ...request, threads: 2, python: fake(`echo '${train}'`) })
    expect(result).toMatchObject({ measured: false, reason: "the peer measured threads 1, not the requested 2" })
  })

  it("returns the figures of a well-formed run, and passes the shape as flags", async () => {
    const python = fake(`echo "$@" >&2; echo '${train}'`)
    const result = await runPeer({ ...request, python })
    expect(result).toMatchObject({ measured: true, threads: 1, figures: { train: { tokens_per_s: 7431.7 } } })
    if (result.measured) {
      expect(result.command).toMatch(/--mode train --d-model 128 --layers 4 --heads 4 --kv-heads 4 --ffn 512 --vocab 32 --seq 64 --batch 16 --threads 1$/)
    }
  })

  it("gives up after the timeout", async () => {
    const result = await runPeer({ ...request, timeoutMs: 200, python: fake("sleep 5") })
    expect(result).toMatchObject({ measured: false, reason: expect.stringMatching(/did not finish in 0.2 s/) })
  })
})

describe("the peer's OpenBLAS kernels", () => {
  it("are named after the CPU's flags (OpenBLAS 0.3.21 took a Sapphire Rapids Xeon for a Prescott), unless the caller named them", () => {
    const avx512 = new Set(["sse3", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "amx_tile"])
    expect(openBlasCoreType(avx512)).toBe("SkylakeX")
    expect(openBlasCoreType(new Set(["avx2", "fma"]))).toBe("Haswell")
    expect(openBlasCoreType(new Set(["avx2", "avx512f"]))).toBeUndefined()
    expect(openBlasCoreType(new Set(["sse3", "avx"]))).toBeUndefined()
    expect(peerEnvironment({}, avx512)).toEqual({ OMP_WAIT_POLICY: "PASSIVE", OPENBLAS_CORETYPE: "SkylakeX" })
    expect(peerEnvironment({ OPENBLAS_CORETYPE: "Zen" }, avx512)).toEqual({ OMP_WAIT_POLICY: "PASSIVE", OPENBLAS_CORETYPE: "Zen" })
    expect(peerEnvironment({}, new Set())).toEqual({ OMP_WAIT_POLICY: "PASSIVE" })
  })
})
