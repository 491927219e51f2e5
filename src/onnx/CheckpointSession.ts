/**
 * An ONNX Runtime session on a checkpoint folder's decoder graph, for the commands that run
 * inference there (`simmer eval --inference ort`): every tensor read once from the shards
 * (GraphSession.ts). The session lives until the scope closes.
 */
import type { LazyCheckpoint } from "../io/Checkpoint.ts"
import type { DecoderGraphOptions } from "./DecoderGraph.ts"
import { openGraphSession } from "./GraphSession.ts"

export const openCheckpointSession = (checkpoint: LazyCheckpoint, options: DecoderGraphOptions = {}) =>
  openGraphSession(checkpoint.config, checkpoint.readInternal, options)
