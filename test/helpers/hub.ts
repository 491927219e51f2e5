/**
 * A Hugging Face Hub on loopback for the tests: the endpoints `@huggingface/hub` calls (repository
 * info with its commit sha, the recursive file tree with sizes and hashes, file resolution with a
 * redirect of large files to a "CDN" path, ranged reads), serving repositories the tests build in
 * memory. Faults on request: a gated repository (401 without the token), a transfer cut after half
 * the bytes, bytes that do not match the listed hash.
 */
import { createHash } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

export interface FakeRepo {
  readonly kind: "model" | "dataset"
  readonly repo: string
  readonly commit: string
  /** Other revisions (branches, tags) and the commit each names; `main` is always `commit`. */
  readonly refs?: Record<string, string>
  /** Files by path; those of 1 KiB or more are served as LFS files (sha256, redirected), as the Hub does with weights. */
  readonly files: Record<string, Uint8Array | string>
  /** Requests without `Authorization: Bearer <token>` get 401. */
  readonly token?: string
}

export interface Faults {
  /** Paths whose first full transfer stops after half of its bytes. */
  readonly truncateOnce?: ReadonlyArray<string>
  /** Paths served with their bytes altered (the listing keeps the true hash). */
  readonly corrupt?: ReadonlyArray<string>
}

export interface FakeHub {
  readonly url: string
  /** Every request as "METHOD path Range", in order. */
  readonly requests: Array<string>
  readonly close: () => Promise<void>
}

const lfsThreshold = 1024

const bytesOf = (content: Uint8Array | string) => (typeof content === "string" ? new TextEncoder().encode(content) : content)
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const gitSha1 = (bytes: Uint8Array) => createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex")

export const startFakeHub = (repos: ReadonlyArray<FakeRepo>, faults: Faults = {}): Promise<FakeHub> => {
  const requests: Array<string> = []
  const truncated = new Set<string>()
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers })
    res.end(JSON.stringify(body))
  }
  const find = (kind: string, repo: string) => repos.find((r) => r.kind === kind && r.repo === repo)
  const commitOf = (repo: FakeRepo, revision: string) =>
    revision === repo.commit || revision === "main" || revision === "HEAD"
      ? repo.commit
      : repo.refs?.[revision] ?? Object.values(repo.refs ?? {}).find((c) => c === revision)
  const authorized = (repo: FakeRepo, req: IncomingMessage) => repo.token === undefined || req.headers.authorization === `Bearer ${repo.token}`

  const serveBytes = (req: IncomingMessage, res: ServerResponse, path: string, bytes: Uint8Array, etag: string, headers: Record<string, string>) => {
    const body = faults.corrupt?.includes(path) ? bytes.map((b) => b ^ 0xff) : bytes
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "")
    const common = { etag: `"${etag}"`, "accept-ranges": "bytes", "content-type": "application/octet-stream", ...headers }
    const start = range !== null ? Number(range[1]) : 0
    const end = range !== null && range[2] !== "" ? Math.min(Number(range[2]), body.length - 1) : body.length - 1
    const part = body.subarray(start, end + 1)
    res.writeHead(range !== null ? 206 : 200, {
      ...common,
      ...(range !== null ? { "content-range": `bytes ${start}-${end}/${body.length}` } : {}),
      "content-length": String(part.length)
    })
    if (part.length > 1 && faults.truncateOnce?.includes(path) && !truncated.has(path)) {
      truncated.add(path)
      res.write(part.subarray(0, Math.floor(part.length / 2)), () => res.destroy())
      return
    }
    res.end(part)
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://hub")
    requests.push(`${req.method} ${url.pathname}${req.headers.range !== undefined ? ` ${req.headers.range}` : ""}`)
    // /api/{models|datasets}/{org}/{name}/{revision|tree}/{rev}
    const api = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(url.pathname)
    // [/datasets]/{org}/{name}/resolve/{rev}/{path}
    const resolve = /^\/(?:(datasets)\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname)
    const cdn = /^\/cdn\/(models|datasets)\/([^/]+\/[^/]+)\/([0-9a-f]{40})\/(.+)$/.exec(url.pathname)
    const located = api !== null
      ? { kind: api[1].slice(0, -1), repo: api[2], revision: decodeURIComponent(api[4]) }
      : resolve !== null
      ? { kind: resolve[1] === "datasets" ? "dataset" : "model", repo: resolve[2], revision: decodeURIComponent(resolve[3]) }
      : cdn !== null
      ? { kind: cdn[1].slice(0, -1), repo: cdn[2], revision: cdn[3] }
      : undefined
    if (located === undefined) return json(res, 404, { error: "Not found" })
    const repo = find(located.kind, located.repo)
    if (repo === undefined) return json(res, 404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" })
    if (!authorized(repo, req)) return json(res, 401, { error: "Access to this resource is restricted." }, { "x-error-code": "GatedRepo" })
    const commit = commitOf(repo, located.revision)
    if (commit === undefined) return json(res, 404, { error: `Invalid rev id: ${located.revision}` }, { "x-error-code": "RevisionNotFound" })
    if (api !== null && api[3] === "revision") {
      return json(res, 200, { _id: "fake", id: repo.repo, sha: commit, private: false, gated: false, downloads: 0, likes: 0, lastModified: "2026-01-01T00:00:00.000Z" })
    }
    if (api !== null) {
      return json(res, 200, Object.entries(repo.files).map(([path, content]) => {
        const bytes = bytesOf(content)
        return {
          type: "file",
          path,
          oid: gitSha1(bytes),
          size: bytes.length,
          ...(bytes.length >= lfsThreshold ? { lfs: { oid: sha256(bytes), size: bytes.length, pointerSize: 130 } } : {})
        }
      }))
    }
    const path = resolve !== null ? resolve[4] : cdn![4]
    const content = repo.files[path]
    if (content === undefined) return json(res, 404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" })
    const bytes = bytesOf(content)
    const lfs = bytes.length >= lfsThreshold
    if (resolve !== null && lfs) {
      // Large files live elsewhere: the Hub redirects to its storage.
      res.writeHead(302, { location: `/cdn/${located.kind}s/${repo.repo}/${commit}/${path}`, "x-repo-commit": commit, "x-linked-etag": `"${sha256(bytes)}"`, "x-linked-size": String(bytes.length) })
      return res.end()
    }
    serveBytes(req, res, path, bytes, lfs ? sha256(bytes) : gitSha1(bytes), { "x-repo-commit": commit })
  })
  return new Promise((resolvePromise) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolvePromise({
        url: `http://127.0.0.1:${port}`,
        requests,
        close: () => new Promise<void>((done) => {
          server.closeAllConnections()
          server.close(() => done())
        })
      })
    })
  )
}
