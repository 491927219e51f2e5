/**
 * A model by Hub id: the files a checkpoint needs (config, safetensors weights and their index,
 * generation config, tokenizer files) in the Hub cache, and nothing else of the repository.
 * Repositories that hold only PyTorch pickles are refused: unpickling runs code from the file.
 */
import { resolve } from "node:path"
import { Effect } from "effect"
import { configFileName, generationConfigFileName, tokenizerFileNames, weightsIndexFileName } from "../io/CheckpointLayout.ts"
import { HubError } from "./HubError.ts"
import type { FileSelection } from "./HubSnapshot.ts"
import { fetchSnapshot } from "./HubSnapshot.ts"
import { hubIdUnlessLocal, type HubId } from "./HubId.ts"

const weightsFile = /^model(-\d+-of-\d+)?\.safetensors$/
const pickleFile = /\.(bin|pt|pth|ckpt|pkl)$/

/** What a run needs: everything (`weights`), or the config and tokenizer a plan check reads. */
export const checkpointFiles = (weights: boolean) => (paths: ReadonlyArray<string>): FileSelection => {
  if (!paths.includes(configFileName)) return { refused: "file-not-found", message: "the repository has no config.json, so it is not a transformers checkpoint." }
  const safetensors = paths.filter((p) => weightsFile.test(p))
  if (safetensors.length === 0) {
    const pickles = paths.filter((p) => pickleFile.test(p))
    return pickles.length > 0
      ? {
        refused: "pickle-only",
        message: `the repository holds its weights only as PyTorch pickles (${pickles.slice(0, 3).join(", ")}), which simmer never ` +
          "unpickles (loading a pickle runs code from it); name a revision with model.safetensors, or convert it with " +
          "transformers (save_pretrained(..., safe_serialization=True)) and pass the folder."
      }
      : { refused: "file-not-found", message: "the repository has no model.safetensors (or shards with model.safetensors.index.json)." }
  }
  const optional = [generationConfigFileName, ...tokenizerFileNames].filter((p) => paths.includes(p))
  return [configFileName, ...(weights ? [...safetensors, ...(paths.includes(weightsIndexFileName) ? [weightsIndexFileName] : [])] : []), ...optional]
}

/** The snapshot folder of a model id with the files a checkpoint needs (`weights: false`: config and tokenizer only). */
export const fetchModel = (id: HubId, options: { readonly weights: boolean } = { weights: true }) =>
  fetchSnapshot({ kind: "model", id, select: checkpointFiles(options.weights) })

/**
 * The folder a checkpoint argument names: a local folder (relative to `folder`), or a Hub id
 * brought into the cache. A command's argument, a plan's `model:`, a teacher or a reward model.
 */
export const checkpointFolder = (text: string, folder: string, options: { readonly weights: boolean } = { weights: true }) => {
  const id = hubIdUnlessLocal(text, folder)
  return id === undefined
    ? Effect.succeed(resolve(folder, text))
    : fetchModel(id, options).pipe(
      Effect.map((snapshot) => snapshot.dir),
      // `org/name` may have been meant as a local path: say that it is not one either.
      Effect.mapError((e) => new HubError({ ...e, message: `${e.message} (${text} is read as a Hub id: there is no folder ${resolve(folder, text)}.)` }))
    )
}
