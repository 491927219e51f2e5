/**
 * `simmer export --onnx`: a checkpoint folder as a standalone ONNX model folder that ONNX
 * Runtime (Python, C#, Java, Node, the web), Optimum's ORTModelForCausalLM, ONNX Runtime
 * GenAI and transformers.js load: model.onnx (float32 weights, inline or in model.onnx_data
 * by OnnxFile.ts's rule), the checkpoint's config.json, generation_config.json and tokenizer
 * files as they are, and genai_config.json for a model whose layers all have the same head counts.
 * The folder appears atomically, as checkpoints do.
 */
import { copyFile, writeFile } from "node:fs/promises"
import { basename, join } from "node:path"
import { Effect } from "effect"
import { openLazyCheckpoint } from "../io/CheckpointReader.ts"
import { writeFolderAtomically } from "../io/AtomicWrite.ts"
import { fsError } from "../io/Errors.ts"
import { decoderGraph } from "./DecoderGraph.ts"
import { genaiConfig, genaiConfigFileName } from "./GenaiConfig.ts"
import { type ExternalData, externalDataFileName, modelFileName, writeModelFiles, type WrittenModel } from "./OnnxFile.ts"

export interface OnnxExportOptions {
  readonly externalData?: ExternalData
  readonly onExisting?: "fail" | "replace"
}

export interface OnnxExportResult extends WrittenModel {
  readonly dir: string
  /** File names written, in writing order. */
  readonly files: ReadonlyArray<string>
}

const tokenIds = (value: unknown): number | ReadonlyArray<number> | undefined =>
  typeof value === "number" || (Array.isArray(value) && value.every((v) => typeof v === "number")) ? value : undefined

/** A key of generation_config.json, else of config.json. */
const special = (key: string, generation: unknown, config: Record<string, unknown>) => {
  const fromGeneration = typeof generation === "object" && generation !== null ? (generation as Record<string, unknown>)[key] : undefined
  return tokenIds(fromGeneration) ?? tokenIds(config[key])
}

export const exportOnnx = Effect.fn("OnnxExport.export")(function*(
  checkpointDir: string,
  outDir: string,
  options: OnnxExportOptions = {}
) {
  const checkpoint = yield* openLazyCheckpoint(checkpointDir)
  const { config } = checkpoint
  const pad = special("pad_token_id", checkpoint.generationConfig, checkpoint.hfConfig)
  const genai = genaiConfig(config, {
    bos: special("bos_token_id", checkpoint.generationConfig, checkpoint.hfConfig),
    eos: special("eos_token_id", checkpoint.generationConfig, checkpoint.hfConfig),
    pad: typeof pad === "number" ? pad : undefined
  })
  // config.json as it is: transformers.js and Optimum read the model type and sizes from it.
  const carried = [checkpoint.files.config, checkpoint.files.generationConfig, ...checkpoint.files.tokenizer]
    .filter((path): path is string => path !== undefined)

  return yield* writeFolderAtomically(outDir, (temp) =>
    Effect.gen(function*() {
      const written = yield* writeModelFiles(temp, decoderGraph(config), checkpoint.readInternal, {
        ...(options.externalData !== undefined ? { externalData: options.externalData } : {}),
        docString: `exported by simmer from ${basename(checkpointDir)}`
      })
      const files = [modelFileName, ...(written.externalBytes !== undefined ? [externalDataFileName] : [])]
      for (const source of carried) {
        const target = join(temp, basename(source))
        yield* Effect.tryPromise({ try: () => copyFile(source, target), catch: fsError(source, "copy") })
        files.push(basename(source))
      }
      if (genai !== undefined) {
        const target = join(temp, genaiConfigFileName)
        yield* Effect.tryPromise({ try: () => writeFile(target, JSON.stringify(genai, null, 2) + "\n"), catch: fsError(target, "write") })
        files.push(genaiConfigFileName)
      }
      return { dir: outDir, files, ...written } satisfies OnnxExportResult
    }), { onExisting: options.onExisting ?? "fail" })
})
