/**
 * Loading a whole checkpoint onto the device for the commands that need every weight at once
 * (generate, accuracy evaluation): the headers are read first and the model's float32 size is
 * checked against the device budget before any tensor is uploaded, so a model too large for the
 * wasm heap is a typed error naming the alternatives, never an out-of-bounds crash. Loading a
 * large model shows progress per tensor.
 */
import { Effect } from "effect"
import { loadCheckpoint, openLazyCheckpoint } from "../io/CheckpointReader.ts"
import type { DeviceRoom } from "../model/DeviceRoom.ts"
import { countParams } from "../model/Params.ts"
import { makeProgress, type Progress } from "./Progress.ts"

/** Float32 bytes of a model's weights plus a working margin for one forward pass (a quarter more). */
export const residentBytes = (parameters: number) => Math.ceil(parameters * 4 * 1.25)

const longLoadBytes = 2 ** 28

/** `room`: the device budget (DeviceMemory's) the whole model must fit. */
export const loadModelChecked = Effect.fnUntraced(function*(dir: string, command: string, room: DeviceRoom) {
  const { config } = yield* Effect.scoped(openLazyCheckpoint(dir))
  const parameters = countParams(config).total
  yield* room.ensure(
    `${command} with ${dir} (${(parameters / 1e9).toFixed(2)}B parameters, float32 on the device)`,
    residentBytes(parameters),
    `${command} keeps the whole model on the device; use the tensorflow backend (--backend tensorflow) for a model ` +
      "this large. prune, score and eval --task general run block by block and need only one decoder block at a time."
  )
  // Progress only where loading takes long enough to wait for (a quarter GiB of weights or more).
  let progress: Progress | undefined
  const loaded = yield* loadCheckpoint(dir, parameters * 4 < longLoadBytes ? {} : {
    onTensor: (_, done, total) => {
      progress ??= makeProgress(`loading ${dir}, tensors`, total)
      progress.update(done + 1)
    }
  })
  progress?.finish()
  return loaded
})
