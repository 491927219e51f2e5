/**
 * Running an exported decoder in ONNX Runtime (onnxruntime-node): one call feeds token ids with
 * their attention mask, positions and the cache of past keys/values, and returns the logits and
 * the cache extended for the next step (KeyValueCache.ts).
 *
 * ONNX Runtime computes where the compute backend does: beside the webgpu backend on its WebGPU
 * execution provider (Dawn inside onnxruntime-node, the same GPU through Vulkan; the few shape
 * ops it leaves run on the CPU), beside every other backend on its CPU execution provider.
 */
import * as tf from "@tensorflow/tfjs"
import * as ort from "onnxruntime-node"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { decoderInputs, decoderOutputs } from "./DecoderIo.ts"
import { emptyCache, type KeyValueCache } from "./KeyValueCache.ts"

export type DecoderSession = ort.InferenceSession

export type OrtProvider = "cpu" | "webgpu"

/** The execution provider beside a compute backend (a BackendName, or tfjs's name of the current one). */
export const ortProviderBeside = (backend: string): OrtProvider => (backend === "webgpu" ? "webgpu" : "cpu")

export interface DecoderSessionOptions {
  /** ONNX Runtime's intra-op threads; default its own (one per physical core). */
  readonly threads?: number | undefined
  /** Default: the provider beside the current compute backend. */
  readonly provider?: OrtProvider
  /** Writes ONNX Runtime's profile (JSON: every node run, its time and provider) to a file named from this prefix, closed by `endProfiling`. */
  readonly profilePrefix?: string
}

/** A session on model bytes (inline weights) or a model.onnx path (external data read beside it). */
export const openDecoderSession = (model: string | Uint8Array, settings: DecoderSessionOptions = {}): Promise<DecoderSession> => {
  const { threads, provider = ortProviderBeside(tf.getBackend()), profilePrefix } = settings
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [provider],
    ...(profilePrefix !== undefined ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {}),
    // Idle intra-op threads sleep instead of spinning: decoding alternates short runs with
    // JavaScript work, and on a shared or oversubscribed CPU spinning threads took the cores
    // from everything else (64 arith prompts decoded on 2 shared, busy cores: 1.0-2.9 s spinning,
    // 0.7-1.6 s sleeping, over four tries each).
    extra: { session: { intra_op: { allow_spinning: "0" } } },
    ...(threads !== undefined ? { intraOpNumThreads: threads } : {})
  }
  // Two calls because `create` is overloaded by argument type.
  return typeof model === "string" ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options)
}

export interface DecoderStepInput {
  /** Token ids [B][T], the same T for every row. */
  readonly ids: ReadonlyArray<ReadonlyArray<number>>
  /** From an earlier step; absent for the first (an empty cache is fed). */
  readonly cache?: KeyValueCache
  /** Positions the cache of a first step should make room for (the prompt and every token to come). */
  readonly capacity?: number
  /** [B][P + T]: 1 for real tokens, 0 for padding; default all ones. */
  readonly attentionMask?: ReadonlyArray<ReadonlyArray<number>>
  /** [B][T]; default P..P+T-1. */
  readonly positions?: ReadonlyArray<ReadonlyArray<number>>
}

export interface DecoderStepOutput {
  /** [B, T, V] row-major. */
  readonly logits: Float32Array
  /** The cache with this step's positions, for the next. */
  readonly cache: KeyValueCache
}

const int64 = (rows: ReadonlyArray<ReadonlyArray<number>>): ort.Tensor =>
  new ort.Tensor("int64", BigInt64Array.from(rows.flat(), (x) => BigInt(x)), [rows.length, rows[0]?.length ?? 0])

/** The session's inputs for a step: ids, mask, positions, and the cache's past. */
const decoderFeeds = (input: DecoderStepInput, cache: KeyValueCache): Record<string, ort.Tensor> => {
  const B = input.ids.length
  const T = input.ids[0].length
  const P = cache.length
  return {
    [decoderInputs.inputIds]: int64(input.ids),
    [decoderInputs.attentionMask]: int64(input.attentionMask ?? Array.from({ length: B }, () => new Array<number>(P + T).fill(1))),
    [decoderInputs.positionIds]: int64(input.positions ?? Array.from({ length: B }, () => Array.from({ length: T }, (_, t) => P + t))),
    ...cache.feeds
  }
}

/** The inputs of a pass over whole sequences, with nothing cached before them. */
const firstFeeds = (session: DecoderSession, config: ModelConfig, ids: ReadonlyArray<ReadonlyArray<number>>) =>
  decoderFeeds({ ids }, emptyCache(session, config, ids.length))

export const runDecoder = async (
  session: DecoderSession,
  config: ModelConfig,
  input: DecoderStepInput
): Promise<DecoderStepOutput> => {
  const cache = input.cache ?? emptyCache(session, config, input.ids.length, input.capacity)
  const out = await session.run(decoderFeeds(input, cache), [decoderOutputs.logits, ...cache.fetches])
  return { logits: out[decoderOutputs.logits].data as Float32Array, cache: cache.extend(out) }
}

/** The logits [B, T, V] of whole sequences ids [B][T], without returning their keys and values. */
export const runLogits = async (session: DecoderSession, config: ModelConfig, ids: ReadonlyArray<ReadonlyArray<number>>): Promise<Float32Array> =>
  (await session.run(firstFeeds(session, config, ids), [decoderOutputs.logits]))[decoderOutputs.logits].data as Float32Array

/** Σ |a| and Σ a² of each layer's MLP activation over the tokens `tokenMask` [B·T] counts, for ids [B][T] (a session on the graph with `mlpStatistics`; causal attention only). */
export const runMlpStatistics = async (
  session: DecoderSession,
  config: ModelConfig,
  ids: ReadonlyArray<ReadonlyArray<number>>,
  tokenMask: Float32Array
): Promise<Array<{ readonly abs: Float32Array; readonly square: Float32Array }>> => {
  const feeds = firstFeeds(session, config, ids)
  feeds[decoderInputs.tokenMask] = new ort.Tensor("float32", tokenMask, [ids.length, ids[0].length])
  const out = await session.run(feeds, config.layers.flatMap((_, i) => [decoderOutputs.mlpAbsSum(i), decoderOutputs.mlpSquareSum(i)]))
  return config.layers.map((_, i) => ({
    abs: out[decoderOutputs.mlpAbsSum(i)].data as Float32Array,
    square: out[decoderOutputs.mlpSquareSum(i)].data as Float32Array
  }))
}

/** A reward model's score at every position [B, T] of ids [B][T] (a session on the graph with the score head; causal attention only). */
export const runScores = async (session: DecoderSession, config: ModelConfig, ids: ReadonlyArray<ReadonlyArray<number>>): Promise<Float32Array> =>
  (await session.run(firstFeeds(session, config, ids), [decoderOutputs.scores]))[decoderOutputs.scores].data as Float32Array

/** −log p(targets[b][t]) at every position [B, T] of ids [B][T] (a session on the graph with the `nll` head; causal attention only). */
export const runTargetNll = async (
  session: DecoderSession,
  config: ModelConfig,
  ids: ReadonlyArray<ReadonlyArray<number>>,
  targets: ReadonlyArray<ReadonlyArray<number>>
): Promise<Float32Array> => {
  const feeds = firstFeeds(session, config, ids)
  feeds[decoderInputs.targets] = int64(targets)
  return (await session.run(feeds, [decoderOutputs.targetNll]))[decoderOutputs.targetNll].data as Float32Array
}
