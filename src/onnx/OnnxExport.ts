/**
 * `simmer export --onnx`: a checkpoint folder as a standalone ONNX model folder that ONNX
 * Runtime (Python, C#, Java, Node, the web), Optimum's ORTModelForCausalLM, ONNX Runtime
 * GenAI and transformers.js load: model.onnx (float32 weights, inline or in model.onnx_data
 * by OnnxFile.ts's rule), the checkpoint's config.json, generation_config.json and tokenizer
 * files as they are, and genai_config.json for a model whose layers all have the same shape.
 * The folder appears atomically, as checkpoints do.
 */
import { copyFile, open, writeFile } from "node:fs/promises"
import { basename, join } from "node:path"
import { Effect } from "effect"
import { openLazyCheckpoint } from "../io/Checkpoint.ts"
import { writeFolderAtomically } from "../io/AtomicWrite.ts"
import { fsError } from "../io/Errors.ts"
import { checkpointGraph } from "./CheckpointSession.ts"
import { genaiConfig, genaiConfigFileName } from "./GenaiConfig.ts"
import { encodeModel, type ExternalData, externalDataFileName, modelFileName } from "./OnnxFile.ts"

export interface OnnxExportOptions {
  readonly externalData?: ExternalData
  readonly onExisting?: "fail" | "replace"
}

export interface OnnxExportResult {
  readonly dir: string
  /** File names written, in writing order. */
  readonly files: ReadonlyArray<string>
  readonly modelBytes: number
  /** Bytes of model.onnx_data, when the weights went there. */
  readonly externalBytes?: number
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
  const encoded = encodeModel(yield* checkpointGraph(checkpoint), {
    ...(options.externalData !== undefined ? { externalData: options.externalData } : {}),
    docString: `exported by simmer from ${basename(checkpointDir)}`
  })
  const pad = special("pad_token_id", checkpoint.generationConfig, checkpoint.hfConfig)
  const genai = genaiConfig(config, {
    bos: special("bos_token_id", checkpoint.generationConfig, checkpoint.hfConfig),
    eos: special("eos_token_id", checkpoint.generationConfig, checkpoint.hfConfig),
    pad: typeof pad === "number" ? pad : undefined
  })

  const files: Array<string> = []
  let externalBytes = 0
  yield* writeFolderAtomically(outDir, (temp) =>
    Effect.tryPromise({
      try: async () => {
        await writeFile(join(temp, modelFileName), encoded.model)
        files.push(modelFileName)
        if (encoded.externalData !== undefined) {
          const file = await open(join(temp, externalDataFileName), "w")
          try {
            for (const piece of encoded.externalData) {
              await file.write(piece)
              externalBytes += piece.byteLength
            }
          } finally {
            await file.close()
          }
          files.push(externalDataFileName)
        }
        // config.json as it is: transformers.js and Optimum read the model type and sizes from it.
        const carried = [checkpoint.files.config, checkpoint.files.generationConfig, ...checkpoint.files.tokenizer]
        for (const source of carried) {
          if (source === undefined) continue
          await copyFile(source, join(temp, basename(source)))
          files.push(basename(source))
        }
        if (genai !== undefined) {
          await writeFile(join(temp, genaiConfigFileName), JSON.stringify(genai, null, 2) + "\n")
          files.push(genaiConfigFileName)
        }
      },
      catch: fsError(outDir, "write")
    }), { onExisting: options.onExisting ?? "fail" })
  return {
    dir: outDir,
    files,
    modelBytes: encoded.model.byteLength,
    ...(encoded.externalData !== undefined ? { externalBytes } : {})
  } satisfies OnnxExportResult
})
