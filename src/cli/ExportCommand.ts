/**
 * `simmer export <checkpoint> --onnx <dir>`: the checkpoint as an ONNX model folder (model.onnx
 * with Optimum's input and output names, the weights inline or in model.onnx_data beyond the
 * protobuf limit, config, generation config and tokenizer), for ONNX Runtime, Optimum, ONNX
 * Runtime GenAI and transformers.js (see OnnxExport.ts and the README).
 */
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { exportOnnx } from "../onnx/OnnxExport.ts"
import { externalDataFileName, modelFileName } from "../onnx/OnnxFile.ts"
import { checkpointArgumentDescription, localCheckpoint } from "./CheckpointArgument.ts"
import { jsonFlag } from "./Flags.ts"
import { TargetExists } from "../io/Errors.ts"

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`

export const exportCommand = Command.make(
  "export",
  {
    checkpoint: Argument.String("checkpoint").pipe(Argument.withDescription(checkpointArgumentDescription)),
    onnx: Flag.String("onnx").pipe(Flag.withDescription(
      "Folder to write the ONNX model to: model.onnx (float32, with past key/value inputs and present outputs named as " +
        "Optimum names them), config.json, generation_config.json, tokenizer files and, when every layer has the same head counts, genai_config.json."
    )),
    externalData: Flag.Boolean("external-data").pipe(
      Flag.withDescription(
        `Put the weights in ${externalDataFileName} beside ${modelFileName} even when they would fit inside it ` +
          "(they go there anyway from 2 GiB less 64 MiB, the protobuf limit less room for the graph)."
      ),
      Flag.withDefault(false)
    ),
    replace: Flag.Boolean("replace").pipe(Flag.withDescription("Replace --onnx if it exists."), Flag.withDefault(false)),
    json: jsonFlag
  },
  Effect.fnUntraced(function*(input) {
    const dir = yield* localCheckpoint(input.checkpoint)
    const result = yield* Effect.scoped(exportOnnx(dir, input.onnx, {
      externalData: input.externalData ? "always" : "auto",
      onExisting: input.replace ? "replace" : "fail"
    })).pipe(
      Effect.catchTag("TargetExists", (e) =>
        Effect.fail(new TargetExists({ path: e.path, message: `${input.onnx} already exists; refusing to overwrite it (choose another --onnx, or add --replace).` })))
    )
    if (input.json) return yield* Console.log(JSON.stringify(result))
    const weights = result.externalBytes === undefined
      ? "weights inline"
      : `weights in ${externalDataFileName} (${mib(result.externalBytes)})`
    yield* Console.log(`wrote ${input.onnx}: ${modelFileName} (${mib(result.modelBytes)}, ${weights}), ${result.files.filter((f) => f !== modelFileName && f !== externalDataFileName).join(", ")}`)
  })
).pipe(Command.withDescription(
  "Exports a checkpoint as an ONNX model with a key/value cache, for ONNX Runtime (Python, C#, Java, Node, the web), " +
    "Optimum, ONNX Runtime GenAI and transformers.js."
))
