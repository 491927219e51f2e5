/**
 * RunStore in a run folder on the local file system:
 *
 *   <run>/plan.yaml, run.json  written when the run is created (io/RunFolder.ts)
 *   <run>/events.ndjson        one RunEvent per line, appended and fsynced
 *   <run>/stages/<name>/       a Hugging Face checkpoint + manifest.json (sha256 per file)
 *   <run>/accepted.json        each strategy's last accepted stage
 *   <run>/result.json          each finished strategy's final checkpoint
 *   <run>/resume/              an interrupted iteration: model/ (checkpoint + manifest),
 *                              tensors.safetensors (e.g. optimizer moments), state.json
 *   <run>/lock                 the writer: pid, host and start time of the process
 *
 * Every write is atomic (temporary name, fsync, rename), so a kill -9 at any instant leaves
 * each accepted checkpoint and the pointers intact. One process writes a run folder at a time:
 * the store takes the lock when it opens and gives it back when its scope closes; a lock left by
 * a process that no longer runs (kill -9) is taken over. `RunStore.layerFolder` opens it.
 */
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Option, type Scope } from "effect"
import { pathExists, writeFolderAtomically } from "../io/AtomicWrite.ts"
import { loadCheckpoint } from "../io/CheckpointReader.ts"
import { saveCheckpoint } from "../io/CheckpointWriter.ts"
import { errnoCode, type FileSystemError, fsError } from "../io/Errors.ts"
import { eventLine, type InvalidEventLog, readEventsIfAny } from "../io/EventLog.ts"
import { verifyManifest, writeManifest } from "../io/Manifest.ts"
import {
  AcceptedFile,
  acceptedFileName,
  CorruptRunFile,
  eventsFileName,
  lockRunFolder,
  readRunFile,
  resultFileName,
  RunLocked,
  RunResult,
  writeRunFile
} from "../io/RunFolder.ts"
import type { RunEvent, Strategy } from "../io/RunEvent.ts"
import { readSafetensors, writeSafetensors } from "../io/Safetensors.ts"
// Types only: RunStore.ts builds its layers from this file.
import type { AcceptedPointer, ResumeState, RunStore, StageContent } from "./RunStore.ts"

const readOptional = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8").catch((e) => (errnoCode(e) === "ENOENT" ? undefined : Promise.reject(e))),
    catch: fsError(path, "read")
  })

export interface RunStoreOptions {
  /**
   * "file" (default): the `lock` file above keeps one writer per folder on one host. "none": the
   * caller guarantees one writer some other way — the cluster fences every write instead
   * (RunStoreFencing.ts), since a lock file cannot tell whether another host's process lives.
   */
  readonly lock?: "file" | "none"
}

/** The store of an existing run folder (created by io/RunFolder.createRunFolder), locked for this process until the scope closes. */
export const openRunStoreFolder = (
  dir: string,
  options: RunStoreOptions = {}
): Effect.Effect<RunStore["Service"], FileSystemError | RunLocked | InvalidEventLog, Scope.Scope> =>
  Effect.gen(function*() {
    const eventsPath = join(dir, eventsFileName)
    const acceptedPath = join(dir, acceptedFileName)
    const resultPath = join(dir, resultFileName)
    const resumeDir = join(dir, "resume")
    yield* Effect.tryPromise({ try: () => mkdir(join(dir, "stages"), { recursive: true }), catch: fsError(dir, "create") })
    if (options.lock !== "none") yield* lockRunFolder(dir)

    const events = readEventsIfAny(eventsPath)
    // A damaged log fails the store here rather than restarting seq at 0 over it.
    let seq = (yield* events).length

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

    const saveStage = (name: string, content: StageContent) =>
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

    const accepted = Effect.gen(function*() {
      const file = yield* readRunFile(acceptedPath, AcceptedFile)
      const pointers = file === undefined ? [] : "stage" in file ? [file] : Object.values(file)
      return new Map(pointers.map((p) => [p.strategy, p as AcceptedPointer] as const)) as ReadonlyMap<Strategy, AcceptedPointer>
    })

    const markAccepted = (pointer: AcceptedPointer) =>
      Effect.gen(function*() {
        const all = new Map(yield* accepted)
        all.set(pointer.strategy, pointer)
        yield* writeRunFile(acceptedPath, Object.fromEntries(all))
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
      const infoPath = join(resumeDir, "state.json")
      const text = yield* readOptional(infoPath)
      const info = yield* Effect.try({
        try: () => JSON.parse(text ?? "") as unknown,
        catch: () =>
          new CorruptRunFile({
            path: infoPath,
            message: `${infoPath} is missing or not JSON, so the interrupted iteration cannot be continued; ` +
              `remove ${resumeDir} to restart it from the last accepted checkpoint.`
          })
      })
      // Host memory first: nothing on the device to release should the tensors file be bad.
      const tensors = yield* readSafetensors(join(resumeDir, "tensors.safetensors"))
      const model = yield* loadStage("resume/model")
      return Option.some({ info, model, tensors: [...tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data })) })
    })

    const clearResume = Effect.tryPromise({ try: () => rm(resumeDir, { recursive: true, force: true }), catch: fsError(resumeDir, "remove") })

    const recordResult = (strategy: Strategy, result: RunResult["strategies"][string]) =>
      Effect.gen(function*() {
        const current = yield* readRunFile(resultPath, RunResult)
        yield* writeRunFile(resultPath, { strategies: { ...current?.strategies, [strategy]: result } })
      })

    return { dir, appendEvent, events, saveStage, loadStage, markAccepted, accepted, saveResume, loadResume, clearResume, recordResult }
  })
