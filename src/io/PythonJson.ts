/**
 * JSON text exactly as Python's `json.dumps(value, indent=2, sort_keys=True)` writes it, the
 * form transformers uses for config.json, generation_config.json and
 * model.safetensors.index.json. Writing the same bytes keeps diffs against checkpoints that
 * transformers wrote empty, and lets a re-saved checkpoint be compared file by file.
 *
 * One thing JSON.parse loses is whether a number was written as a float (`10000.0`) or an
 * int (`10000`); Python prints them differently. A number is printed as a Python float when
 * it is not an integer or when its key is one of `floatKeys` (the float-typed fields of the
 * configs we write); every other integral number prints as an int.
 */

/** Float-typed fields of LlamaConfig / Qwen2Config / GenerationConfig that may hold integral values. */
export const configFloatKeys: ReadonlySet<string> = new Set([
  "rms_norm_eps",
  "rope_theta",
  "attention_dropout",
  "initializer_range",
  "partial_rotary_factor",
  "factor",
  "low_freq_factor",
  "high_freq_factor",
  "attention_factor",
  "beta_fast",
  "beta_slow",
  "temperature",
  "top_p",
  "min_p",
  "typical_p",
  "epsilon_cutoff",
  "eta_cutoff",
  "repetition_penalty",
  "encoder_repetition_penalty",
  "length_penalty",
  "diversity_penalty",
  "guidance_scale"
])

export interface PythonJsonOptions {
  /** Keys whose numeric values print as floats even when integral. */
  readonly floatKeys?: ReadonlySet<string>
}

/**
 * `json.dumps(value, indent=2, sort_keys=True)` (ensure_ascii on, NaN/Infinity allowed), without
 * a trailing newline; transformers appends "\n" when it writes a file.
 */
export const toPythonJson = (value: unknown, options: PythonJsonOptions = {}): string =>
  write(value, "", false, options.floatKeys ?? new Set())

const write = (value: unknown, indent: string, asFloat: boolean, floatKeys: ReadonlySet<string>): string => {
  if (value === null || value === undefined) return "null"
  if (value === true) return "true"
  if (value === false) return "false"
  if (typeof value === "number") return asFloat || !Number.isInteger(value) ? pythonFloat(value) : pythonInt(value)
  if (typeof value === "bigint") return value.toString()
  if (typeof value === "string") return pythonString(value)
  const inner = indent + "  "
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]"
    return "[\n" + value.map((v) => inner + write(v, inner, asFloat, floatKeys)).join(",\n") + "\n" + indent + "]"
  }
  if (typeof value === "object") {
    // Python drops nothing, but a JS object may carry undefined-valued keys that JSON omits.
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    if (keys.length === 0) return "{}"
    keys.sort(compareCodePoints)
    return "{\n" +
      keys.map((k) =>
        inner + pythonString(k) + ": " +
        write((value as Record<string, unknown>)[k], inner, floatKeys.has(k), floatKeys)
      ).join(",\n") +
      "\n" + indent + "}"
  }
  throw new Error(`cannot write a ${typeof value} as JSON`)
}

// Python sorts str keys by code point; JS `<` compares UTF-16 units, which differs only for
// astral characters against U+E000..U+FFFF.
const compareCodePoints = (a: string, b: string): number => {
  const ca = Array.from(a, (c) => c.codePointAt(0)!)
  const cb = Array.from(b, (c) => c.codePointAt(0)!)
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) if (ca[i] !== cb[i]) return ca[i] - cb[i]
  return ca.length - cb.length
}

const pythonInt = (x: number): string => {
  if (Object.is(x, -0)) return "0"
  // Integers above 2^53 are not exact in JS; print all their digits as Python would.
  return Math.abs(x) < 1e21 ? String(x) : BigInt(x).toString()
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export const pythonFloat = (x: number): string => {
  if (Number.isNaN(x)) return "NaN"
  if (x === Infinity) return "Infinity"
  if (x === -Infinity) return "-Infinity"
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0"
  const sign = x < 0 ? "-" : ""
  // toExponential() without an argument gives the shortest digits that round-trip, like repr.
  const [mantissa, exponentText] = Math.abs(x).toExponential().split("e")
  const exponent = Number(exponentText)
  const digits = mantissa.replace(".", "")
  if (exponent < -4 || exponent >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
    return `${sign}${m}e${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`
  }
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`
  const intDigits = exponent + 1
  if (digits.length <= intDigits) return `${sign}${digits.padEnd(intDigits, "0")}.0`
  return `${sign}${digits.slice(0, intDigits)}.${digits.slice(intDigits)}`
}

/** A JSON string literal with Python's ensure_ascii escaping (lowercase four-hex-digit \u escapes, UTF-16 pairs). */
export const pythonString = (s: string): string => {
  let out = "\""
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x22) out += "\\\""
    else if (c === 0x5c) out += "\\\\"
    else if (c === 0x0a) out += "\\n"
    else if (c === 0x0d) out += "\\r"
    else if (c === 0x09) out += "\\t"
    else if (c === 0x08) out += "\\b"
    else if (c === 0x0c) out += "\\f"
    else if (c < 0x20 || c > 0x7e) out += "\\u" + c.toString(16).padStart(4, "0")
    else out += s[i]
  }
  return out + "\""
}
