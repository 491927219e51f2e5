/**
 * The WebGPU backend has no synchronous tensor read (dataSync, arraySync and bufferSync throw
 * there): no source file may call one. Reads go through src/model/Read.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"

const root = join(import.meta.dirname, "../..")

const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? sources(path) : entry.name.endsWith(".ts") ? [path] : []
  })

/** The text without comments (block and line comments; strings are left as they are). */
const withoutComments = (text: string): string =>
  text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " ")).replace(/(^|[^:"'`])\/\/.*$/gm, "$1")

describe("no synchronous tensor reads", () => {
  it("no file under src/ calls dataSync(), arraySync() or bufferSync()", () => {
    const found: Array<string> = []
    for (const file of sources(join(root, "src"))) {
      withoutComments(readFileSync(file, "utf8")).split("\n").forEach((line, i) => {
        if (/\b(dataSync|arraySync|bufferSync)\s*\(/.test(line)) found.push(`${relative(root, file)}:${i + 1}: ${line.trim()}`)
      })
    }
    expect(found).toEqual([])
  })

  it("the check sees a call, and not a mention in a comment", () => {
    expect(/\bdataSync\s*\(/.test(withoutComments("const x = t.dataSync() // read"))).toBe(true)
    expect(/\bdataSync\s*\(/.test(withoutComments("/** dataSync() throws */\n// arraySync()"))).toBe(false)
  })
})
