/**
 * A command's checkpoint argument as the local folder it names: a folder (relative to the working
 * directory), or a Hub id (`org/name[@revision]`) whose checkpoint files are fetched into the
 * Hub cache first, with a progress bar.
 */
import { checkpointFolder } from "../hub/HubModel.ts"

export const checkpointArgumentDescription =
  "A Hugging Face checkpoint: a folder (config.json + model.safetensors or shards), or a Hub id such as Qwen/Qwen2.5-0.5B[@revision], fetched into the Hub cache."

export const localCheckpoint = (written: string) => checkpointFolder(written, process.cwd())
