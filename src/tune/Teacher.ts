/**
 * The distillation teacher: its next-token log-probs of a tuning batch, on the engine the run
 * reads models with. On tfjs, simmer's forward pass; on ort, ONNX Runtime on a session opened
 * once for the whole tuning on the teacher's weights (which never change while it tunes), the
 * logits then taken to log-probs by the same tfjs kernel. Both see the same right-padded rows
 * with causal attention only, as the student's pass does.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import type { TokenBatch } from "../model/Gradients.ts"
import type { Model } from "../model/Model.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { openModelSession } from "../onnx/ModelSession.ts"
import { type DecoderSession, runLogits } from "../onnx/OrtDecoder.ts"
import { logProbsAt, teacherLogProbs } from "./DistillLoss.ts"

export interface Teacher {
  readonly config: ModelConfig
  /** log softmax(logits / temperature) [B·(T−1), V] of every position that predicts a next token; the caller disposes it. */
  readonly logProbs: (batch: TokenBatch, temperature: number) => Effect.Effect<tf.Tensor2D>
}

export const tfjsTeacher = (model: Model): Teacher => ({
  config: model.config,
  logProbs: (batch, temperature) => Effect.sync(() => teacherLogProbs(model.config, model.params, batch, temperature))
})

export const ortTeacher = (session: DecoderSession, config: ModelConfig): Teacher => ({
  config,
  logProbs: (batch, temperature) =>
    Effect.promise(async () => {
      const { batchSize: B, seqLen: T } = batch
      const ids = Array.from({ length: B }, (_, b) => Array.from(batch.ids.subarray(b * T, b * T + T - 1)))
      const logits = await runLogits(session, config, ids)
      return tf.tidy(() => logProbsAt(tf.tensor2d(logits, [B * (T - 1), config.vocabSize]), temperature))
    })
})

/** The teacher on `inference`; an ort session lives until the scope closes. */
export const openTeacher = (model: Model, inference: InferenceEngine) =>
  inference === "ort"
    ? Effect.map(openModelSession(model), (session) => ortTeacher(session, model.config))
    : Effect.succeed(tfjsTeacher(model))
