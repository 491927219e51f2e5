/**
 * The folders a submitted plan may read: its model and data files must lie under one of them
 * once every symbolic link is followed, so neither `..` nor an absolute path nor a link inside a
 * root that points out of it reaches the rest of the machine. A path that does not exist yet is
 * judged by its nearest existing folder, so a link on the way out is caught all the same.
 */
import { realpathSync } from "node:fs"
import { basename, dirname, isAbsolute, join, sep } from "node:path"

/** The real path of `path`, following links as far as the path exists. */
export const realPathOf = (path: string): string => {
  try {
    return realpathSync(path)
  } catch {
    const parent = dirname(path)
    return parent === path ? path : join(realPathOf(parent), basename(path))
  }
}

/** The roots as real paths (a root that is itself a link counts where it points). */
export const realRoots = (roots: ReadonlyArray<string>): ReadonlyArray<string> => [...new Set(roots.map(realPathOf))]

/** Why `path` (absolute) is not under any of `roots` (real paths), or undefined when it is. */
export const outsideRoots = (path: string, roots: ReadonlyArray<string>): string | undefined => {
  if (!isAbsolute(path)) return `${path} is not an absolute path`
  const real = realPathOf(path)
  if (roots.some((root) => real === root || real.startsWith(root.endsWith(sep) ? root : root + sep))) return undefined
  const through = real !== path ? ` (it resolves to ${real})` : ""
  return `${path}${through} is outside the folders this daemon may read: ${roots.join(", ")}. Put the model or data under one of ` +
    "them, or start `simmer serve` with --models naming its folder."
}
