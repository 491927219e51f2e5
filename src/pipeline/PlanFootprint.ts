/**
 * A plan's peak device memory, estimated from the model's shape before any work: the original
 * model (kept for the baselines and the gates), the last accepted model, and the largest of the
 * stages an iteration runs — scoring calibration data, each tuner's tuning, evaluation by
 * decoding. Models only shrink as the run goes, so the original's shape bounds them all.
 *
 * Where the budget is host memory it also holds what the run allocates outside tfjs, so those
 * count there: ONNX Runtime's session when evaluation decodes on ort (its own copy of the
 * weights, twice while it is built from the encoded model), and `export: [onnx]`'s model
 * held in memory while it is written. The wasm heap and a GPU's memory hold neither.
 */
import { blockActivationBytes } from "../model/Blockwise.ts"
import { maxChunkLogits } from "../model/ChunkedLoss.ts"
import type { InferenceEngine } from "../compute/Inference.ts"
import { decodingBytes, type Footprint, footprint, weightBytes } from "../model/Footprint.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { onnxExportBytes } from "../onnx/OnnxFile.ts"
import { ortSessionBytes } from "../onnx/GraphSession.ts"
import { runLogitFloats } from "../onnx/OrtPerplexity.ts"
import type { Tuner } from "../tune/Tuner.ts"
import { type Plan, plannedTuners, planSeqLen, planUnitsOf, scorerFor } from "./Plan.ts"
import { scorerRunsOnOrt } from "../prune/Scorers.ts"

/** Sequences per batch when scoring calibration data (Pruning.ts). */
export const calibrationBatchSize = 32

export const planFootprint = (
  plan: Plan,
  config: ModelConfig,
  tuners: ReadonlyArray<Tuner<unknown, unknown>>,
  evaluationBatchSize: number,
  /** Present where the budget is host memory: what the run allocates outside tfjs counts too. */
  host?: { readonly inference: InferenceEngine }
): Footprint => {
  const w = weightBytes(config)
  const seqLen = planSeqLen(plan)
  const stages: Array<[string, Footprint]> = [
    // Scorers run block by block (model/Blockwise.ts): one block's activations for a batch, plus
    // the hidden states of every calibration sequence carried between blocks; no logits.
    ["scoring", footprint({
      "pruned copy": w,
      ...(host?.inference === "ort" && planUnitsOf(plan).some((unit) => scorerRunsOnOrt(unit, scorerFor(plan, unit)))
        ? { "ONNX Runtime session": ortSessionBytes(config) }
        : {}),
      "scoring pass, one block": Math.max(...config.layers.map((_, i) => blockActivationBytes(config, i, calibrationBatchSize, seqLen))),
      "hidden states carried between blocks": plan.data.calibrationExamples * seqLen * config.hiddenSize * 4
    }, `Lower tuner.maxSeqLen or data.calibrationExamples (calibration is scored ${calibrationBatchSize} sequences at a time)`)],
    // Graded datasets decode with the whole model; text (the built-in `general` task) is scored
    // block by block with the LM head in chunks on tfjs (eval/Perplexity.ts), or on ONNX Runtime
    // in runs whose logits and their log-softmax stay under a fixed size (OrtPerplexity.ts). A
    // file may be either.
    ["evaluation", footprint({
      "evaluated model": w,
      ...(host?.inference === "ort" ? { "ONNX Runtime session": ortSessionBytes(config) } : {}),
      ...(!plan.data.evaluate.every((ref) => "task" in ref && ref.task === "general")
        ? { decoding: decodingBytes(config, evaluationBatchSize, seqLen) }
        : host?.inference === "ort"
        ? { "a perplexity run's logits in ONNX Runtime": 2 * runLogitFloats * 4 }
        : {
          "perplexity pass, one block": Math.max(...config.layers.map((_, i) => blockActivationBytes(config, i, evaluationBatchSize, seqLen))),
          "a chunk of logits": 3 * maxChunkLogits * 4
        })
    }, `Lower tuner.maxSeqLen or evaluate on a smaller model (evaluation decodes ${evaluationBatchSize} sequences at a time)`)],
    ...tuners.map((t): [string, Footprint] => [`${t.kind} tuning`, t.footprint(config, host)]),
    ...(host !== undefined && plan.export.includes("onnx")
      ? [["ONNX export", footprint(
        { "exported stage in memory": onnxExportBytes(config) },
        "Drop `export: [onnx]` and run `simmer export --onnx` on the final checkpoint (without the run's models beside it)"
      )] satisfies [string, Footprint]]
      : [])
  ]
  const [name, peak] = stages.reduce((a, b) => (b[1].bytes > a[1].bytes ? b : a))
  return footprint({
    "original model": w,
    "last accepted model": w,
    ...Object.fromEntries(Object.entries(peak.parts).map(([part, bytes]) => [`${name}: ${part}`, bytes]))
  }, peak.lower)
}

/** What a user can change when a plan does not fit: the settings of the stage that needs the most. */
export const planMemoryAdvice = (need: Footprint): string =>
  `${need.lower ?? "Lower tuner.maxSeqLen"}, raise --memory if the device has more, or prune a smaller model; \`simmer plan check\` shows the estimate.`

/** One tensor a run makes: what it is and its float32 bytes. */
export interface PlannedTensor {
  readonly what: string
  readonly bytes: number
}

/**
 * The largest single tensor a plan's run makes on a model of `config`: the embedding, an MLP
 * weight, or the full-vocabulary logits of a distillation batch. On webgpu no kernel may bind a
 * buffer beyond the adapter's limit (WebGPU's default is 128 MiB; lavapipe stays there).
 */
export const largestTensor = (plan: Plan, config: ModelConfig): PlannedTensor => {
  const V = config.vocabSize
  const H = config.hiddenSize
  const tensors: Array<PlannedTensor> = [
    { what: `the embedding (${V} × ${H})`, bytes: V * H * 4 },
    ...config.layers.map((l) => ({ what: `an MLP weight (${l.intermediateSize} × ${H})`, bytes: l.intermediateSize * H * 4 })),
    // SFT, CPT and GRPO split the head into vocabulary chunks that fit a binding
    // (model/VocabChunks.ts); distillation (a KL over the whole vocabulary) does not yet.
    ...plannedTuners(plan).flatMap((t) =>
      t.kind === "distill"
        ? [{ what: `the logits of a distill batch (${t.batchSize} sequences × ${t.maxSeqLen} tokens × ${V})`, bytes: t.batchSize * t.maxSeqLen * V * 4 }]
        : [])
  ]
  return tensors.reduce((a, b) => (b.bytes > a.bytes ? b : a))
}
