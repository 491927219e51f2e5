/**
 * `simmer inspect <checkpoint>`: what a checkpoint is — architecture, shapes, parameters per
 * component, on-disk dtype and file sizes — after validating every tensor against config.json.
 * A sequence classifier (`XxxForSequenceClassification`) is shown as the reward model it is:
 * its score head and pad id instead of an LM head. The last line names the compute backend the
 * checkpoint would run on (on webgpu: the adapter, its driver and binding limit).
 */
import { stat } from "node:fs/promises"
import { basename } from "node:path"
import { Console, Effect } from "effect"
import { Argument, Command } from "effect/cli"
import { openLazyCheckpoint } from "../io/CheckpointReader.ts"
import { architectureClass, labelCount } from "../io/HfConfig.ts"
import { isUniform } from "../model/ModelConfig.ts"
import { countParams } from "../model/Params.ts"
import { Compute } from "../services/Compute.ts"
import { backendFlag, jsonFlag } from "./Flags.ts"
import { checkpointArgumentDescription, localCheckpoint } from "./CheckpointArgument.ts"

const human = (n: number) =>
  n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : `${n}`

const bytes = (n: number) =>
  n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`

export const inspectCommand = Command.make(
  "inspect",
  {
    checkpoint: Argument.String("checkpoint").pipe(
      Argument.withDescription(checkpointArgumentDescription)
    ),
    json: jsonFlag,
    backend: backendFlag
  },
  Effect.fnUntraced(function*(input) {
    const compute = yield* Compute
    // Headers only: every tensor's name, dtype, shape and extent is checked against config.json
    // without reading a weight, so a checkpoint of any size inspects in moments.
    const checkpoint = yield* openLazyCheckpoint(yield* localCheckpoint(input.checkpoint), "either")
    const scoreShape = checkpoint.kind === "causal-lm" ? undefined : [labelCount(checkpoint.hfConfig), checkpoint.config.hiddenSize]
    const { config } = checkpoint
    const reward = scoreShape !== undefined
    // A classifier has a score head where a causal LM has its LM head.
    const decoderCounts = countParams(reward ? { ...config, tieWordEmbeddings: true } : config)
    const scoreHead = reward ? scoreShape[0] * scoreShape[1] : 0
    const counts = { ...decoderCounts, ...(reward ? { scoreHead } : {}), total: decoderCounts.total + scoreHead }
    const padId = typeof checkpoint.hfConfig.pad_token_id === "number" ? checkpoint.hfConfig.pad_token_id : null
    const paths = [
      checkpoint.files.config,
      ...(checkpoint.files.index !== undefined ? [checkpoint.files.index] : []),
      ...checkpoint.files.weights,
      ...(checkpoint.files.generationConfig !== undefined ? [checkpoint.files.generationConfig] : []),
      ...checkpoint.files.tokenizer
    ]
    const files = yield* Effect.forEach(paths, (path) =>
      Effect.promise(() => stat(path)).pipe(Effect.map((s) => ({ name: basename(path), bytes: s.size }))))
    const architecture = architectureClass(checkpoint.hfConfig)
    const layers = config.layers.map((l) => ({
      intermediate_size: l.intermediateSize,
      num_attention_heads: l.numHeads,
      num_key_value_heads: l.numKeyValueHeads
    }))
    if (input.json) {
      yield* Console.log(JSON.stringify({
        path: input.checkpoint,
        architecture,
        kind: reward ? "reward-model" : "causal-lm",
        ...(reward ? { score_head: scoreShape, pad_token_id: padId } : {}),
        dtype: checkpoint.dtype,
        vocab_size: config.vocabSize,
        hidden_size: config.hiddenSize,
        head_dim: config.headDim,
        num_hidden_layers: config.layers.length,
        uniform_layers: isUniform(config),
        layers,
        tie_word_embeddings: config.tieWordEmbeddings,
        qkv_bias: config.qkvBias,
        rope_theta: config.ropeTheta,
        rms_norm_eps: config.rmsNormEps,
        parameters: counts,
        files,
        compute: { backend: compute.backend, description: compute.description, ...(compute.adapter ? { adapter: compute.adapter } : {}) }
      }, null, 2))
      return
    }
    const l0 = config.layers[0]
    const lines = [
      `${input.checkpoint}: ${architecture}${reward ? " (reward model)" : ""}, ${checkpoint.dtype}`,
      `  layers ${config.layers.length} × (hidden ${config.hiddenSize}, MLP ${isUniform(config) ? l0.intermediateSize : "per layer"}, ` +
      `heads ${l0.numHeads} query / ${l0.numKeyValueHeads} key-value, head_dim ${config.headDim})`,
      `  vocab ${config.vocabSize}, ` +
      (reward
        ? `score head [${scoreShape.join(", ")}] read at the last token before the first pad (pad_token_id ${padId ?? "none"})`
        : `${config.tieWordEmbeddings ? "tied" : "untied"} LM head`) +
      `, rope_theta ${config.ropeTheta}` +
      `${config.qkvBias ? ", q/k/v bias" : ""}`,
      `  parameters ${human(counts.total)} (${counts.total.toLocaleString("en-US")}): ` +
      `embedding ${human(counts.embedding)}, attention ${human(counts.attention)}, MLP ${human(counts.mlp)}, ` +
      `norms ${human(counts.norms)}${counts.lmHead > 0 ? `, LM head ${human(counts.lmHead)}` : ""}` +
      `${reward ? `, score head ${human(scoreHead)}` : ""}; non-embedding ${human(counts.nonEmbedding)}`,
      `  files:`,
      ...files.map((f) => `    ${f.name.padEnd(36)} ${bytes(f.bytes)}`),
      `  compute: ${compute.description}`
    ]
    if (!isUniform(config)) {
      lines.push("  per-layer shapes:", ...layers.map((l, i) => `    ${i}: MLP ${l.intermediate_size}, heads ${l.num_attention_heads}/${l.num_key_value_heads}`))
    }
    yield* Console.log(lines.join("\n"))
  }, Effect.scoped)
).pipe(
  Command.withDescription("Show a checkpoint's architecture, parameters per component, dtype and files (validates every tensor)."),
  Command.withExamples([{ command: "simmer inspect models/base --json", description: "Machine-readable summary" }])
)
