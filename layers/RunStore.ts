/**
 * RunStore in a run folder on the local file system:
 *
 *   <run>/plan.yaml          the plan as given (written by the caller)
 *   <run>/events.ndjson      one RunEvent per line, appended and fsynced
 *   <run>/stages/<name>/     a Hugging Face checkpoint + manifest.json (sha256 per file)
 *   <run>/accepted.json      pointer to the last accepted stage
 *   <run>/resume/            the interrupted stage: model/ (checkpoint + manifest),
 *                            tensors.safetensors (optimizer moments), state.json
 *
 * Every write is atomic (temporary name, fsync, rename), so a kill -9 at any instant leaves
 * each accepted checkpoint and the pointer intact.
 */
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Layer, Option, Result, Schema } from "effect"
import { loadCheckpoint, saveCheckpoint } from "../src/io/Checkpoint.ts"
import { pathExists, writeFileAtomically, writeFolderAtomically } from "../src/io/AtomicWrite.ts"
import { FileSystemError, fsError } from "../src/io/Errors.ts"
import { readSafetensors, writeSafetensors } from "../src/io/Safetensors.ts"
import { CorruptStage, verifyManifest, writeManifest } from "../src/io/Manifest.ts"
import { eventLine, parseEventLog } from "../src/io/EventLog.ts"
import type { RunEvent } from "../src/io/RunEvent.ts"
import { type AcceptedPointer, type ResumeState, RunStore } from "../src/services/RunStore.ts"

const AcceptedPointerSchema = Schema.fromJsonString(Schema.Struct({
  stage: Schema.String,
  iteration: Schema.Int,
  strategy: Schema.String
}))

const readOptional = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8").catch((e) => (e.code === "ENOENT" ? undefined : Promise.reject(e))),
    catch: fsError(path, "read")
  })

export const RunStoreLive = (dir: string): Layer.Layer<RunStore, FileSystemError> =>
  Layer.effect(
    RunStore,
    Effect.gen(function*() {
      const eventsPath = join(dir, "events.ndjson")
      const acceptedPath = join(dir, "accepted.json")
      const resumeDir = join(dir, "resume")
      yield* Effect.tryPromise({ try: () => mkdir(join(dir, "stages"), { recursive: true }), catch: fsError(dir, "create") })

      const events = Effect.gen(function*() {
        const text = yield* readOptional(eventsPath)
        return text === undefined ? [] : yield* parseEventLog(eventsPath, text)
      })
      let seq = (yield* events.pipe(Effect.orElseSucceed(() => []))).length

      const appendEvent = (event: Omit<RunEvent, "seq" | "time">) =>
        Effect.tryPromise({
          try: async () => {
            const full: RunEvent = { seq, time: new Date().toISOString(), ...event }
            const handle = await open(eventsPath, "a")
            try {
              await handle.write(eventLine(full))
              await handle.sync()
            } finally {
              await handle.close()
            }
            seq++
            return full
          },
          catch: fsError(eventsPath, "append to")
        })

      const saveStage = (name: string, content: Parameters<RunStore["Service"]["saveStage"]>[1]) =>
        Effect.gen(function*() {
          const path = join(dir, "stages", name)
          // A stage folder is complete only once its manifest exists: write the checkpoint, then hash it.
          yield* saveCheckpoint(path, { ...content, onExisting: "replace" })
          yield* writeManifest(path)
          return `stages/${name}`
        })

      const loadStage = (stage: string) =>
        Effect.gen(function*() {
          const path = join(dir, stage)
          yield* verifyManifest(path)
          const loaded = yield* loadCheckpoint(path)
          return { config: loaded.config, params: loaded.params }
        })

      const markAccepted = (pointer: AcceptedPointer) => writeFileAtomically(acceptedPath, JSON.stringify(pointer) + "\n")

      const accepted = Effect.gen(function*() {
        const text = yield* readOptional(acceptedPath)
        if (text === undefined) return Option.none<AcceptedPointer>()
        return Option.fromNullishOr(Result.getOrUndefined(Schema.decodeUnknownResult(AcceptedPointerSchema)(text)))
      })

      const saveResume = (state: ResumeState) =>
        writeFolderAtomically(resumeDir, (temp) =>
          Effect.gen(function*() {
            const modelDir = join(temp, "model")
            yield* saveCheckpoint(modelDir, state.model)
            yield* writeManifest(modelDir)
            yield* writeSafetensors(join(temp, "tensors.safetensors"), state.tensors.map((t) => ({
              name: t.name,
              dtype: "F32" as const,
              shape: t.shape,
              data: Effect.succeed(t.data)
            })))
            yield* Effect.tryPromise({
              try: () => writeFile(join(temp, "state.json"), JSON.stringify(state.info, null, 2) + "\n"),
              catch: fsError(join(temp, "state.json"), "write")
            })
            return "resume"
          }), { onExisting: "replace" })

      const loadResume = Effect.gen(function*() {
        if (!(yield* pathExists(resumeDir))) return Option.none()
        const model = yield* loadStage("resume/model")
        const tensors = yield* readSafetensors(join(resumeDir, "tensors.safetensors"))
        const infoPath = join(resumeDir, "state.json")
        const text = yield* readOptional(infoPath)
        const info = yield* Effect.try({
          try: () => JSON.parse(text ?? "") as Record<string, unknown>,
          catch: () => new CorruptStage({ path: infoPath, message: `${infoPath} is missing or not JSON.` })
        })
        return Option.some({ info, ...model, tensors })
      })

      const clearResume = Effect.tryPromise({ try: () => rm(resumeDir, { recursive: true, force: true }), catch: fsError(resumeDir, "remove") })

      return RunStore.of({ dir, appendEvent, events, saveStage, loadStage, markAccepted, accepted, saveResume, loadResume, clearResume })
    })
  )
