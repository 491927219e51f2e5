/**
 * The PyTorch peer (bench/peer/torch_baseline.py: the same Llama-style decoder in plain PyTorch
 * on the CPU), run in the same benchmark run as simmer's measurement, at the same shape, batch,
 * sequence and thread count, so that a ratio between the two means something (figures measured
 * on another machine or day differ by 1.5× or more). The peer is optional: without python3,
 * PyTorch or OpenBLAS the result says what is missing instead of a figure.
 */
import { Schema } from "effect"
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { relative } from "node:path"
import { fileURLToPath } from "node:url"
import type { ModelConfig } from "../src/model/ModelConfig.ts"
import { type Options, progress } from "./common.ts"

/** What to install for the peer (Debian's PyTorch, and the BLAS that makes it a fair peer). */
export const peerInstallHint = "apt-get install -y python3-torch libopenblas0-pthread"

export const peerScript = fileURLToPath(new URL("./peer/torch_baseline.py", import.meta.url))

/** Debian's python3-torch is installed for the system interpreter, not for a virtualenv's. */
export const defaultPeerPython = "/usr/bin/python3"

export const peerModes = ["train", "infer_generate", "infer_forward"] as const
export type PeerMode = (typeof peerModes)[number]

const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))

/** One line of the peer's stdout; fields beyond these are kept out of the result. */
const PeerLine = Schema.Struct({
  framework: Schema.Literal("torch"),
  device: Schema.String,
  threads: PositiveInt,
  blas: Schema.String,
  d_model: PositiveInt,
  layers: PositiveInt,
  heads: PositiveInt,
  kv_heads: PositiveInt,
  batch: PositiveInt,
  seq: PositiveInt,
  mode: Schema.Literals(peerModes),
  tokens_per_s: Positive,
  ms_per_step: Positive
})
export type PeerLine = typeof PeerLine.Type

const decodeLine = Schema.decodeUnknownResult(PeerLine)

export class PeerOutputError extends Error {
  override readonly name = "PeerOutputError"
}

/**
 * The peer's stdout, strictly: every non-empty line must be one JSON result (the script prints
 * nothing else there; warnings go to stderr), each mode at most once, and every mode in
 * `expected` present. Python writes NaN and Infinity as bare words, which JSON.parse rejects.
 */
export const parsePeerOutput = (
  stdout: string,
  expected: ReadonlyArray<PeerMode>
): Partial<Record<PeerMode, PeerLine>> => {
  const figures: Partial<Record<PeerMode, PeerLine>> = {}
  stdout.split("\n").forEach((raw, i) => {
    const line = raw.trim()
    if (line === "") return
    let json: unknown
    try {
      json = JSON.parse(line)
    } catch (error) {
      throw new PeerOutputError(`peer output line ${i + 1} is not JSON (${error instanceof Error ? error.message : String(error)}): ${line.slice(0, 200)}`)
    }
    const decoded = decodeLine(json)
    if (decoded._tag === "Failure") {
      throw new PeerOutputError(`peer output line ${i + 1} is not a peer result: ${decoded.failure.message}`)
    }
    const figure = decoded.success
    if (figures[figure.mode] !== undefined) throw new PeerOutputError(`peer output has two "${figure.mode}" results (line ${i + 1})`)
    figures[figure.mode] = figure
  })
  const missing = expected.filter((mode) => figures[mode] === undefined)
  if (missing.length > 0) throw new PeerOutputError(`peer output lacks ${missing.map((m) => `"${m}"`).join(", ")}`)
  return figures
}

/** The peer's model shape; it builds uniform layers with head size d_model / heads. */
export interface PeerShape {
  readonly dModel: number
  readonly layers: number
  readonly heads: number
  readonly kvHeads: number
  readonly ffn: number
  readonly vocab: number
}

/** The shape of a simmer model, or why the peer cannot build it. */
export const peerShape = (config: ModelConfig): PeerShape | { readonly unsupported: string } => {
  const first = config.layers[0]
  if (first === undefined) return { unsupported: "the model has no layers" }
  const uniform = config.layers.every((l) =>
    l.numHeads === first.numHeads && l.numKeyValueHeads === first.numKeyValueHeads && l.intermediateSize === first.intermediateSize)
  if (!uniform) return { unsupported: "the peer builds identical layers; this model's layers differ (pruned)" }
  if (config.headDim * first.numHeads !== config.hiddenSize) {
    return { unsupported: `the peer's head size is d_model / heads, this model's is ${config.headDim} (d_model ${config.hiddenSize}, ${first.numHeads} heads)` }
  }
  return {
    dModel: config.hiddenSize,
    layers: config.layers.length,
    heads: first.numHeads,
    kvHeads: first.numKeyValueHeads,
    ffn: first.intermediateSize,
    vocab: config.vocabSize
  }
}

export interface PeerRequest {
  readonly config: ModelConfig
  /** `train` measures training steps; `infer` greedy decoding and the whole-sequence forward. */
  readonly mode: "train" | "infer"
  readonly threads: number
  /** Training and forward batch and sequence length. */
  readonly batch: number
  readonly seq: number
  /** Decoding: prompts, prompt length and new tokens (the peer's defaults 16, 16, 48 otherwise). */
  readonly genBatch?: number
  readonly prompt?: number
  readonly newTokens?: number
  /** Timed steps and warm-up steps (training and forward), and timed decoding calls. */
  readonly steps?: number
  readonly warmup?: number
  readonly genReps?: number
  readonly python?: string
  readonly timeoutMs?: number
}

export type PeerResult =
  | {
    readonly measured: true
    readonly command: string
    readonly threads: number
    readonly blas: string
    readonly figures: Partial<Record<PeerMode, PeerLine>>
  }
  | { readonly measured: false; readonly reason: string }

const argumentsOf = (request: PeerRequest, shape: PeerShape): Array<string> => {
  const flags: Array<[string, number | undefined]> = [
    ["d-model", shape.dModel], ["layers", shape.layers], ["heads", shape.heads], ["kv-heads", shape.kvHeads],
    ["ffn", shape.ffn], ["vocab", shape.vocab], ["seq", request.seq], ["batch", request.batch],
    ["threads", request.threads], ["gen-batch", request.genBatch], ["prompt", request.prompt],
    ["new-tokens", request.newTokens],
    // The script needs at least one timed step (it divides by them and reports the first loss).
    ["steps", request.steps === undefined ? undefined : Math.max(1, request.steps)],
    ["warmup", request.warmup], ["gen-reps", request.genReps === undefined ? undefined : Math.max(1, request.genReps)]
  ]
  return [
    peerScript, "--mode", request.mode,
    ...flags.flatMap(([name, value]) => (value === undefined ? [] : [`--${name}`, String(value)]))
  ]
}

/**
 * The OpenBLAS kernel family for a CPU with these /proc/cpuinfo flags, or undefined to leave
 * OpenBLAS's own choice. Debian's OpenBLAS 0.3.21 takes a CPU it does not know for a Prescott
 * (SSE3): on a Xeon with AVX-512 and AMX it ran the peer's products at 40-46 GFLOP/s on two
 * threads, a quarter of what the CPU does, and the ratios to it measured OpenBLAS's guess.
 */
export const openBlasCoreType = (flags: ReadonlySet<string>): string | undefined =>
  ["avx512f", "avx512bw", "avx512vl", "avx512dq"].every((f) => flags.has(f))
    ? "SkylakeX"
    : flags.has("avx2") && flags.has("fma")
    ? "Haswell"
    : undefined

const cpuFlags = (): ReadonlySet<string> => {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("flags"))
    return new Set(line?.split(":")[1]?.trim().split(/\s+/) ?? [])
  } catch {
    return new Set()
  }
}

/** The peer's environment: libgomp's threads passive, OpenBLAS's kernels named after the CPU unless the caller named them. */
export const peerEnvironment = (base: NodeJS.ProcessEnv, flags: ReadonlySet<string>): Record<string, string> => {
  const coreType = base.OPENBLAS_CORETYPE ?? openBlasCoreType(flags)
  // libgomp's spinning threads fight OpenBLAS's own pool (the peer's README).
  return { OMP_WAIT_POLICY: "PASSIVE", ...(coreType !== undefined ? { OPENBLAS_CORETYPE: coreType } : {}) }
}

const tail = (text: string, chars = 600): string => (text.length > chars ? `…${text.slice(-chars)}` : text).trim()

/** Runs the peer and returns its figures, or why there are none. Never rejects. */
export const runPeer = (request: PeerRequest): Promise<PeerResult> => {
  const shape = peerShape(request.config)
  if ("unsupported" in shape) return Promise.resolve({ measured: false, reason: shape.unsupported })
  const python = request.python ?? defaultPeerPython
  const args = argumentsOf(request, shape)
  const environment = peerEnvironment(process.env, cpuFlags())
  // Shown with the script relative to the working directory, as one would type it.
  const command = `${Object.entries(environment).map(([k, v]) => `${k}=${v}`).join(" ")} ${python} ${
    [relative(process.cwd(), peerScript), ...args.slice(1)].join(" ")
  }`
  const expected: ReadonlyArray<PeerMode> = request.mode === "train" ? ["train"] : ["infer_generate", "infer_forward"]
  const timeoutMs = request.timeoutMs ?? 600_000
  return new Promise((resolve) => {
    execFile(python, args, {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, ...environment }
    }, (error, stdout, stderr) => {
      if (error !== null) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === "ENOENT") {
          resolve({ measured: false, reason: `${python} not found: the PyTorch peer needs Debian's python3 with PyTorch (${peerInstallHint})` })
        } else if (error.killed === true) {
          resolve({ measured: false, reason: `the peer did not finish in ${timeoutMs / 1000} s (${command})` })
        } else if (/No module named ['"]?torch/.test(stderr)) {
          resolve({ measured: false, reason: `PyTorch is not installed for ${python} (${peerInstallHint})` })
        } else {
          resolve({ measured: false, reason: `the peer failed (exit ${String(error.code ?? error.signal)}): ${tail(stderr) || error.message}` })
        }
        return
      }
      let figures: Partial<Record<PeerMode, PeerLine>>
      try {
        figures = parsePeerOutput(stdout, expected)
      } catch (parseError) {
        resolve({ measured: false, reason: parseError instanceof Error ? parseError.message : String(parseError) })
        return
      }
      const first = figures[expected[0]]!
      // The script echoes its shape: a mismatch means it did not measure what was asked.
      const echoed = { d_model: shape.dModel, layers: shape.layers, heads: shape.heads, kv_heads: shape.kvHeads, threads: request.threads }
      for (const [key, want] of Object.entries(echoed)) {
        const got = first[key as keyof typeof echoed]
        if (got !== want) {
          resolve({ measured: false, reason: `the peer measured ${key} ${got}, not the requested ${want}` })
          return
        }
      }
      if (!first.blas.includes("OpenBLAS")) {
        resolve({ measured: false, reason: `PyTorch runs on the reference BLAS (${first.blas}), about ten times slower than OpenBLAS and not a fair peer (apt-get install -y libopenblas0-pthread)` })
        return
      }
      resolve({ measured: true, command, threads: first.threads, blas: first.blas, figures })
    })
  })
}

/** `--peer` (default on), `--peer false` or `--no-peer` to skip it. */
export const peerEnabled = (options: Options): boolean => {
  if (options.has("no-peer")) {
    if (options.get("no-peer") !== "true") throw new Error(`--no-peer takes no value, got "${options.get("no-peer")}"`)
    if (options.has("peer")) throw new Error("--peer and --no-peer together")
    return false
  }
  const raw = options.get("peer") ?? "true"
  if (raw === "true" || raw === "1" || raw === "yes") return true
  if (raw === "false" || raw === "0" || raw === "no") return false
  throw new Error(`--peer must be true or false, got "${raw}"`)
}

/** "1 thread", "2 threads". */
export const threadsLabel = (threads: number): string => `${threads} thread${threads === 1 ? "" : "s"}`

/**
 * The peer run once at each of `threadCounts` (the thread counts simmer's rows used), in this
 * run, as `request` describes it for that count; skipped when `enabled` is false.
 */
export const peersAtThreads = async (
  label: string,
  threadCounts: Iterable<number>,
  enabled: boolean,
  request: (threads: number) => PeerRequest
): Promise<Map<number, PeerResult>> => {
  const peers = new Map<number, PeerResult>()
  for (const threads of new Set(threadCounts)) {
    if (!enabled) {
      peers.set(threads, { measured: false, reason: "skipped (--no-peer)" })
      continue
    }
    progress(`${label}: PyTorch peer, ${threadsLabel(threads)}`)
    const peer = await runPeer(request(threads))
    if (!peer.measured) progress(`  peer not measured: ${peer.reason}`)
    peers.set(threads, peer)
  }
  return peers
}

/** The peer runs for a result: by thread count. */
export const peerRunsByThreads = (peers: Map<number, PeerResult>) =>
  Object.fromEntries([...peers].map(([threads, peer]) => [threadsLabel(threads), peer]))

/** The options every benchmark with a peer reads. */
export const peerOptionNames = ["peer", "no-peer", "peer-python"] as const

/** A simmer figure beside the peer's: their ratio (above 1: simmer is faster), or why there is none. */
export const besidePeer = (simmerTokensPerSecond: number, peer: PeerResult, mode: PeerMode) => {
  if (!peer.measured) return { peer: { measured: false as const, reason: peer.reason } }
  const figure = peer.figures[mode]
  if (figure === undefined) return { peer: { measured: false as const, reason: `the peer ran without "${mode}"` } }
  return {
    peer: { measured: true as const, mode, threads: figure.threads, tokensPerSecond: figure.tokens_per_s },
    ratioToPeer: Math.round((simmerTokensPerSecond / figure.tokens_per_s) * 100) / 100
  }
}
