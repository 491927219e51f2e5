/**
 * The safetensors file format: an 8-byte little-endian header length N, N bytes of JSON
 * header `{"__metadata__": {...}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]}}`
 * (offsets relative to the data section that follows), then the raw little-endian tensor bytes.
 *
 * Reading never trusts the header: it is validated completely (length within the file, UTF-8
 * JSON object, every entry well formed, dtype supported, byte length = elements × dtype size,
 * offsets inside the data section, no two tensors overlapping) before any tensor is read, and
 * tensors are then read one at a time by offset through a file handle, so a multi-GB file is
 * never held in memory at once. Gaps between tensors and trailing bytes are tolerated (they are
 * harmless); the Python library is stricter there but nothing it writes has them.
 *
 * Writing produces the bytes the Python `safetensors` library produces for the same tensors:
 * entries sorted by dtype alignment (descending: F32, BF16, F16) then by name (bytewise), data
 * laid out contiguously in that order, the compact JSON header with `__metadata__` first,
 * padded with spaces to a multiple of 8 bytes. transformers passes `{"format": "pt"}` as
 * metadata, which is our default.
 */
import type { FileHandle } from "node:fs/promises"
import { open } from "node:fs/promises"
import { Effect, Result, Schema, type Scope } from "effect"
import { type Dtype, decodeTensor, dtypeSize, encodeTensor, isDtype, littleEndian } from "./Dtype.ts"
import { CheckpointNotFound, CorruptCheckpoint, describeCause, errnoCode, FileSystemError, fsError, listSome, schemaProblems, UnsupportedDtype } from "./Errors.ts"

export interface TensorInfo {
  readonly name: string
  readonly dtype: Dtype
  /** Shape as stored (PyTorch orientation). */
  readonly shape: ReadonlyArray<number>
  /** Byte offsets [begin, end) relative to the start of the data section. */
  readonly begin: number
  readonly end: number
}

export interface SafetensorsHeader {
  readonly path: string
  readonly fileSize: number
  /** N, the JSON header's length in bytes (padding included). */
  readonly headerLength: number
  /** Absolute file offset of the data section: 8 + N. */
  readonly dataStart: number
  readonly metadata: Readonly<Record<string, string>> | undefined
  /** Tensors in the order of their data. */
  readonly tensors: ReadonlyArray<TensorInfo>
}

/** An open, validated safetensors file. Closed when the enclosing Scope closes. */
export interface SafetensorsFile {
  readonly header: SafetensorsHeader
  readonly tensor: (name: string) => TensorInfo | undefined
  /** The tensor's values as float32 (F16 / BF16 decoded exactly). */
  readonly read: (tensor: TensorInfo) => Effect.Effect<Float32Array, CorruptCheckpoint | FileSystemError>
  /**
   * Rows [first, first + count) of the tensor (slices along its first axis) as float32: a part
   * read by offset, so an embedding's few rows never need the whole matrix.
   */
  readonly readRows: (
    tensor: TensorInfo,
    first: number,
    count: number
  ) => Effect.Effect<Float32Array, CorruptCheckpoint | FileSystemError>
}

/** The Python library refuses headers above 100 MB; so do we, before allocating anything. */
export const maxHeaderLength = 100_000_000

// Large reads and writes go in chunks: one fs call moves at most 2 GiB.
const ioChunk = 1 << 30

const Natural = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const HeaderEntry = Schema.Struct({
  dtype: Schema.String,
  shape: Schema.Array(Natural),
  data_offsets: Schema.Tuple([Natural, Natural])
})
const decodeEntry = Schema.decodeUnknownResult(HeaderEntry)
const decodeMetadata = Schema.decodeUnknownResult(Schema.Record(Schema.String, Schema.String))

const corrupt = (path: string, problem: string) =>
  new CorruptCheckpoint({ path, message: `${path} is not a valid safetensors file: ${problem}.` })

/** Product of a shape, or undefined when it exceeds the exactly representable integers. */
export const numElements = (shape: ReadonlyArray<number>): number | undefined => {
  let n = 1
  for (const d of shape) {
    n *= d
    if (!Number.isSafeInteger(n)) return undefined
  }
  return n
}

/**
 * Validates a parsed header against the file it came from. Pure, so that every rule can be
 * tested on hand-made headers.
 */
export const validateHeader = (
  path: string,
  json: unknown,
  fileSize: number,
  headerLength: number
): Effect.Effect<SafetensorsHeader, CorruptCheckpoint | UnsupportedDtype> => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return Effect.fail(corrupt(path, "the header is not a JSON object"))
  }
  const dataStart = 8 + headerLength
  const dataSize = fileSize - dataStart
  let metadata: Record<string, string> | undefined
  const problems: Array<string> = []
  const entries: Array<{ name: string; dtype: string; shape: ReadonlyArray<number>; begin: number; end: number }> = []
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      const decoded = decodeMetadata(value)
      if (Result.isFailure(decoded)) problems.push(`"__metadata__" must map strings to strings`)
      else metadata = decoded.success
      continue
    }
    const decoded = decodeEntry(value, { errors: "all", reportInput: true })
    if (Result.isFailure(decoded)) {
      problems.push(`tensor "${name}": ${schemaProblems(decoded.failure).join(", ")}`)
      continue
    }
    const { dtype, shape, data_offsets: [begin, end] } = decoded.success
    entries.push({ name, dtype, shape, begin, end })
  }
  if (problems.length > 0) return Effect.fail(corrupt(path, `malformed header entries: ${listSome(problems)}`))

  const unsupported = entries.filter((e) => !isDtype(e.dtype))
  if (unsupported.length > 0) {
    const first = unsupported[0]
    const list = listSome(unsupported.map((e) => `"${e.name}" is ${e.dtype}`), 5)
    return Effect.fail(
      new UnsupportedDtype({
        path,
        dtype: first.dtype,
        message: `${path} holds tensors of a dtype simmer cannot load (${list}); only F32, F16 and BF16 ` +
          `weights are supported (quantized or integer checkpoints must be converted to floating point first).`
      })
    )
  }

  const tensors: Array<TensorInfo> = []
  for (const e of entries) {
    const dtype = e.dtype as Dtype
    const count = numElements(e.shape)
    if (e.begin > e.end) {
      problems.push(`tensor "${e.name}" has data_offsets [${e.begin}, ${e.end}] with begin after end`)
    } else if (e.end > dataSize) {
      problems.push(
        `tensor "${e.name}" has data_offsets [${e.begin}, ${e.end}] but the data section is only ${dataSize} bytes ` +
          `(the file is truncated or the header lies about offsets)`
      )
    } else if (count === undefined || count * dtypeSize[dtype] !== e.end - e.begin) {
      problems.push(
        `tensor "${e.name}" (${dtype}, shape [${e.shape.join(", ")}]) needs ` +
          `${count === undefined ? "an impossible number of" : count * dtypeSize[dtype]} bytes but its data_offsets ` +
          `[${e.begin}, ${e.end}] span ${e.end - e.begin}`
      )
    } else {
      tensors.push({ name: e.name, dtype, shape: e.shape, begin: e.begin, end: e.end })
    }
  }
  if (problems.length > 0) return Effect.fail(corrupt(path, listSome(problems)))

  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end)
  let previous: TensorInfo | undefined
  for (const t of tensors) {
    if (t.begin === t.end) continue
    if (previous !== undefined && t.begin < previous.end) {
      problems.push(
        `tensors "${previous.name}" [${previous.begin}, ${previous.end}] and "${t.name}" [${t.begin}, ${t.end}] overlap`
      )
    }
    if (previous === undefined || t.end > previous.end) previous = t
  }
  if (problems.length > 0) return Effect.fail(corrupt(path, listSome(problems)))

  return Effect.succeed({ path, fileSize, headerLength, dataStart, metadata, tensors })
}

const readAt = (handle: FileHandle, path: string, position: number, target: Uint8Array) =>
  Effect.tryPromise({
    try: async () => {
      let done = 0
      while (done < target.length) {
        const length = Math.min(target.length - done, ioChunk)
        const { bytesRead } = await handle.read(target, done, length, position + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
      return done
    },
    catch: fsError(path, "read")
  }).pipe(
    Effect.flatMap((done) =>
      done < target.length
        ? Effect.fail(corrupt(
          path,
          `the file ended after ${position + done} bytes while reading ${target.length} bytes at ${position} ` +
            `(was it truncated while open?)`
        ))
        : Effect.void
    )
  )

/** Reads and validates the header of an open file. */
const readHeader = Effect.fnUntraced(function*(handle: FileHandle, path: string) {
  const { size: fileSize } = yield* Effect.tryPromise({ try: () => handle.stat(), catch: fsError(path, "stat") })
  if (fileSize < 8) {
    return yield* corrupt(path, `the file is ${fileSize} bytes long, shorter than the 8-byte header length (truncated or empty)`)
  }
  const prefix = new Uint8Array(8)
  yield* readAt(handle, path, 0, prefix)
  const declared = new DataView(prefix.buffer).getBigUint64(0, true)
  if (declared > BigInt(fileSize - 8)) {
    return yield* corrupt(
      path,
      `the header length is ${declared} bytes but the file has only ${fileSize - 8} bytes after the length ` +
        `(the file is truncated or is not a safetensors file)`
    )
  }
  const headerLength = Number(declared)
  if (headerLength > maxHeaderLength) {
    return yield* corrupt(path, `the header length ${headerLength} exceeds the ${maxHeaderLength}-byte limit`)
  }
  if (headerLength < 2) return yield* corrupt(path, `the header length is ${headerLength}, too short for a JSON object`)
  const headerBytes = new Uint8Array(headerLength)
  yield* readAt(handle, path, 8, headerBytes)
  let text: string
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes)
  } catch {
    return yield* corrupt(path, "the header is not valid UTF-8")
  }
  if (!text.startsWith("{")) return yield* corrupt(path, "the header does not start with '{'")
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (cause) {
    return yield* corrupt(path, `the header is not valid JSON (${describeCause(cause)})`)
  }
  return yield* validateHeader(path, json, fileSize, headerLength)
})

/**
 * Opens a safetensors file and validates its header; the handle stays open until the Scope
 * closes, so many tensors can be read without reopening.
 */
export const openSafetensors = Effect.fn("Safetensors.open")(function*(
  path: string
): Effect.fn.Return<SafetensorsFile, CheckpointNotFound | CorruptCheckpoint | UnsupportedDtype | FileSystemError, Scope.Scope> {
  const handle = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => open(path, "r"),
      catch: (cause) =>
        errnoCode(cause) === "ENOENT"
          ? new CheckpointNotFound({ path, message: `${path} does not exist.` })
          : fsError(path, "open")(cause)
    }),
    (h) => Effect.promise(() => h.close().catch(() => undefined))
  )
  const header = yield* readHeader(handle, path)
  const byName = new Map(header.tensors.map((t) => [t.name, t]))
  const readBytes = (tensor: TensorInfo, begin: number, end: number) =>
    Effect.suspend(() => {
      const bytes = new Uint8Array(end - begin)
      return readAt(handle, path, header.dataStart + begin, bytes).pipe(
        // F32 on a little-endian machine is used in place rather than copied: half the memory.
        Effect.map(() =>
          tensor.dtype === "F32" && littleEndian ? new Float32Array(bytes.buffer) : decodeTensor(bytes, tensor.dtype)
        )
      )
    })
  const read = (tensor: TensorInfo) => readBytes(tensor, tensor.begin, tensor.end)
  const readRows = (tensor: TensorInfo, first: number, count: number) => {
    const rows = tensor.shape[0] ?? 1
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > rows) {
      return Effect.die(new Error(`readRows: rows [${first}, ${first + count}) of ${tensor.name} with ${rows} rows`))
    }
    const rowBytes = (tensor.end - tensor.begin) / Math.max(rows, 1)
    return readBytes(tensor, tensor.begin + first * rowBytes, tensor.begin + (first + count) * rowBytes)
  }
  return { header, tensor: (name: string) => byName.get(name), read, readRows }
})

/** Reads only the validated header of a file. */
export const readSafetensorsHeader = (path: string) =>
  Effect.scoped(Effect.map(openSafetensors(path), (file) => file.header))

export interface LoadedTensor {
  readonly dtype: Dtype
  readonly shape: ReadonlyArray<number>
  readonly data: Float32Array
}

/** A float32 tensor in host memory with its name (resume state, optimizer moments). */
export interface NamedTensor {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly data: Float32Array
}

/** Every tensor of a (small) file as float32, by name. Large checkpoints go through `openSafetensors`. */
export const readSafetensors = (path: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const file = yield* openSafetensors(path)
      const out = new Map<string, LoadedTensor>()
      for (const t of file.header.tensors) {
        out.set(t.name, { dtype: t.dtype, shape: t.shape, data: yield* file.read(t) })
      }
      return out
    })
  )

/** A tensor to write; its data is produced only when the writer reaches it. */
export interface TensorSource<E = never> {
  readonly name: string
  readonly dtype: Dtype
  /** Shape on disk. */
  readonly shape: ReadonlyArray<number>
  readonly data: Effect.Effect<Float32Array, E>
}

// Rank of each dtype in the safetensors Dtype enum, which is ordered by alignment.
const dtypeRank: Readonly<Record<Dtype, number>> = { F16: 7, BF16: 8, F32: 11 }

const utf8 = new TextEncoder()

/** The Rust library's order: dtype alignment descending, then name bytewise. */
export const safetensorsOrder = <T extends { readonly name: string; readonly dtype: Dtype }>(
  tensors: ReadonlyArray<T>
): Array<T> =>
  [...tensors].sort((a, b) =>
    dtypeRank[b.dtype] - dtypeRank[a.dtype] || Buffer.compare(utf8.encode(a.name), utf8.encode(b.name))
  )

export interface SafetensorsLayout {
  /** The 8-byte length followed by the padded JSON header. */
  readonly prefix: Uint8Array
  /** Entries in data order, with their offsets. */
  readonly entries: ReadonlyArray<TensorInfo>
  /** Total file size. */
  readonly fileSize: number
}

/** Header bytes and offsets for a set of tensors, as the Python library lays them out. */
export const safetensorsLayout = (
  tensors: ReadonlyArray<{ readonly name: string; readonly dtype: Dtype; readonly shape: ReadonlyArray<number> }>,
  metadata: Readonly<Record<string, string>> | null
): SafetensorsLayout => {
  const names = new Set<string>()
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`tensor ${t.name} is listed twice`)
    if (t.name === "__metadata__") throw new Error(`"__metadata__" cannot be a tensor name`)
    names.add(t.name)
  }
  let offset = 0
  const entries = safetensorsOrder(tensors).map((t) => {
    const count = numElements(t.shape)
    if (count === undefined) throw new Error(`tensor ${t.name} has too many elements`)
    const begin = offset
    offset += count * dtypeSize[t.dtype]
    return { name: t.name, dtype: t.dtype, shape: t.shape, begin, end: offset }
  })
  // serde_json's compact form equals JSON.stringify's for these plain values, and the field
  // order is the struct's: dtype, shape, data_offsets.
  const parts: Array<string> = []
  if (metadata !== null) parts.push(`"__metadata__":${JSON.stringify(metadata)}`)
  for (const e of entries) {
    const info = `{"dtype":"${e.dtype}","shape":${JSON.stringify(e.shape)},"data_offsets":[${e.begin},${e.end}]}`
    parts.push(`${JSON.stringify(e.name)}:${info}`)
  }
  const json = utf8.encode(`{${parts.join(",")}}`)
  const padded = Math.ceil(json.length / 8) * 8
  const prefix = new Uint8Array(8 + padded).fill(0x20, 8 + json.length)
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true)
  prefix.set(json, 8)
  return { prefix, entries, fileSize: prefix.length + offset }
}

const writeAt = (handle: FileHandle, path: string, position: number, bytes: Uint8Array) =>
  Effect.tryPromise({
    try: async () => {
      let done = 0
      while (done < bytes.length) {
        const length = Math.min(bytes.length - done, ioChunk)
        const { bytesWritten } = await handle.write(bytes, done, length, position + done)
        done += bytesWritten
      }
    },
    catch: fsError(path, "write")
  })

export interface WriteSafetensorsOptions {
  /** `__metadata__`; transformers writes {"format": "pt"} (the default); null omits it. */
  readonly metadata?: Readonly<Record<string, string>> | null
}

/**
 * Writes tensors to `path` (created or truncated), pulling each tensor's data only when it
 * is written so at most one tensor's bytes are in flight. The caller makes the write atomic
 * (see AtomicWrite), since a checkpoint is several files.
 */
export const writeSafetensors = Effect.fn("Safetensors.write")(function*<E>(
  path: string,
  tensors: ReadonlyArray<TensorSource<E>>,
  options: WriteSafetensorsOptions = {}
): Effect.fn.Return<{ readonly fileSize: number }, E | FileSystemError> {
  const metadata = options.metadata === undefined ? { format: "pt" } : options.metadata
  const layout = safetensorsLayout(tensors, metadata)
  const byName = new Map(tensors.map((t) => [t.name, t]))
  yield* Effect.scoped(
    Effect.gen(function*() {
      const handle = yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => open(path, "w"), catch: fsError(path, "create") }),
        (h) => Effect.promise(() => h.close().catch(() => undefined))
      )
      yield* writeAt(handle, path, 0, layout.prefix)
      for (const entry of layout.entries) {
        const data = yield* byName.get(entry.name)!.data
        const expected = (entry.end - entry.begin) / dtypeSize[entry.dtype]
        if (data.length !== expected) {
          return yield* Effect.die(
            new Error(`tensor ${entry.name}: ${data.length} values for shape [${entry.shape.join(", ")}] (${expected})`)
          )
        }
        yield* writeAt(handle, path, layout.prefix.length + entry.begin, encodeTensor(data, entry.dtype))
      }
    })
  )
  return { fileSize: layout.fileSize }
})
