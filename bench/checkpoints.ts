/**
 * `npm run -s bench -- make-checkpoint --shape qwen2.5-0.5b --dir /tmp/q05`: writes a randomly
 * initialised checkpoint of a real model's shape (see src/io/ShapePresets.ts) or of one of the
 * small ladder shapes of the `scale` benchmark, in the Hugging Face layout, with simmer's
 * character tokenizer (tokenizer.json generated here, not the model's own: ids 0-3 are
 * <pad> <bos> <eos> <unk>, then one id per character of the built-in tasks' alphabet, so every id
 * is inside any of these vocabularies). Big files belong under /tmp, never in the repository.
 */
import { Effect } from "effect"
import type { HfConfig } from "../src/io/HfConfig.ts"
import { newHfConfig } from "../src/io/NewConfig.ts"
import { writeRandomCheckpoint } from "../src/io/RandomCheckpoint.ts"
import { isShapePreset, shapePresetNames, shapePresets } from "../src/io/ShapePresets.ts"
import { uniformConfig } from "../src/model/ModelConfig.ts"
import { countParams } from "../src/model/Params.ts"
import { baseTokenizer } from "../src/tune/BaseTraining.ts"
import { toModelConfig } from "../src/io/HfConfig.ts"
import { type Benchmark, intOption, progress, round, run } from "./common.ts"

/** Small Llama shapes below the real ones: the bottom rungs of the scale ladder. */
const smallShape = (hidden: number, layers: number, heads: number, kvHeads: number, intermediate: number, vocab: number): HfConfig => ({
  ...newHfConfig(
    uniformConfig({
      architecture: "llama",
      vocabSize: vocab,
      hiddenSize: hidden,
      headDim: hidden / heads,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      maxPositionEmbeddings: 2048,
      tieWordEmbeddings: true,
      qkvBias: false,
      outputBias: false,
      mlpBias: false
    }, { numLayers: layers, intermediateSize: intermediate, numHeads: heads, numKeyValueHeads: kvHeads }),
    { bos: 1, eos: 2, pad: 0 }
  ),
  torch_dtype: "bfloat16"
})

export const ladderShapes: Readonly<Record<string, HfConfig>> = {
  "tiny-1m": smallShape(128, 4, 4, 2, 512, 4096),
  "small-8m": smallShape(256, 8, 8, 2, 1024, 8192),
  ...shapePresets
}

export const shapeNames = Object.keys(ladderShapes)

/** `shape` into `dir`; returns the parameter count and bytes written. */
export const makeCheckpoint = async (shape: string, dir: string, maxShardBytes: number, seed = 0) => {
  const hf = ladderShapes[shape]
  if (hf === undefined) throw new Error(`unknown shape "${shape}" (known: ${shapeNames.join(", ")})`)
  const tokenizer = baseTokenizer()
  const started = performance.now()
  let last = 0
  const saved = await run(writeRandomCheckpoint(dir, hf, {
    seed,
    maxShardBytes,
    extraFiles: [
      ...Object.entries(tokenizer.files()).map(([name, content]) => ({ name, content })),
      { name: "generation_config.json", content: `${JSON.stringify({ bos_token_id: tokenizer.bosId, eos_token_id: tokenizer.eosId }, null, 2)}\n` }
    ],
    onTensor: (name, done, total) => {
      if (performance.now() - last > 5000 || done === total - 1) {
        last = performance.now()
        progress(`  ${shape}: tensor ${done + 1}/${total} (${name}), ${round((performance.now() - started) / 1000)} s`)
      }
    }
  }).pipe(Effect.orDie))
  return {
    shape,
    dir,
    parameters: countParams(toModelConfig(hf)).total,
    files: saved.files,
    seconds: round((performance.now() - started) / 1000)
  }
}

export const makeCheckpointBench: Benchmark = {
  summary: "writes a random bf16 checkpoint of a real model's shape (Hugging Face layout, sharded) for the large-model tests",
  usage: `make-checkpoint --shape ${shapePresetNames.join("|")}|tiny-1m|small-8m --dir DIR [--max-shard-mb 500] [--seed 0]`,
  options: ["shape", "dir", "max-shard-mb", "seed"],
  run: async (options) => {
    const shape = options.get("shape") ?? "qwen2.5-0.5b"
    const out = options.get("dir")
    if (out === undefined) throw new Error("--dir DIR is required (under /tmp for the large shapes)")
    if (!isShapePreset(shape) && !(shape in ladderShapes)) throw new Error(`unknown --shape ${shape}`)
    return makeCheckpoint(shape, out, intOption(options, "max-shard-mb", 500) * 1_000_000, intOption(options, "seed", 0))
  }
}
