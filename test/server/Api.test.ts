/**
 * The daemon's HTTP API against a real server on loopback (port 0), called with a real HTTP
 * client (fetch), over a real SQLite file and run folders: every endpoint's success and its
 * error codes, the OpenAPI document, and the SSE stream's replay from Last-Event-ID.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Redacted } from "effect"
import { call, parseSse, startDaemon, submit, tinyPlan, waitForStatus, writeTinyRunInputs } from "../helpers/daemon.ts"
import { tempDir } from "../io/_support.ts"

const events = (dir: string) => readFileSync(join(dir, "events.ndjson"), "utf8").trim().split("\n").map((l) => JSON.parse(l))

describe("the daemon's HTTP API", () => {
  it.live("submits, lists, shows, cancels, resumes, deletes, and serves reports, checkpoints and downloads", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const folder = `?folder=${encodeURIComponent(tmp)}`

      expect((yield* call(`${daemon.url}/healthz`)).body).toEqual({ status: "ok" })
      expect((yield* call(`${daemon.url}/readyz`)).body).toMatchObject({ ready: true, queued: 0, running: 0 })
      const openapi = yield* call(`${daemon.url}/v1/openapi.json`)
      expect(openapi.status).toBe(200)
      expect(Object.keys(openapi.body.paths)).toEqual(expect.arrayContaining(["/v1/runs", "/v1/runs/{id}", "/v1/runs/{id}/events", "/healthz", "/metrics"]))

      // A long run holds the only slot; a second waits in the queue.
      const long = yield* submit(daemon, tinyPlan(join(tmp, "model"), { steps: 5000 }), `${folder}&name=long&priority=1`)
      expect(long.status).toBe(201)
      expect(long.body).toMatchObject({ name: "long", priority: 1, status: "queued" })
      expect(long.body.id).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/)
      yield* waitForStatus(daemon, long.body.id, ["running"])
      const queued = yield* submit(daemon, tinyPlan("model"), folder)
      expect(queued.status).toBe(201)

      const list = yield* call(`${daemon.url}/v1/runs`)
      expect(list.body.total).toBe(2)
      expect(list.body.runs.map((r: { id: string }) => r.id)).toEqual([queued.body.id, long.body.id])
      expect((yield* call(`${daemon.url}/v1/runs?status=running`)).body.runs.map((r: { id: string }) => r.id)).toEqual([long.body.id])
      expect((yield* call(`${daemon.url}/v1/runs?limit=1&offset=1`)).body).toMatchObject({ total: 2, offset: 1, runs: [{ id: long.body.id }] })
      expect((yield* call(`${daemon.url}/v1/runs?limit=0`)).status).toBe(400)

      const detail = yield* call(`${daemon.url}/v1/runs/${long.body.id}`)
      expect(detail.body).toMatchObject({ id: long.body.id, status: "running", folder: join(tmp, "data", "runs", long.body.id) })
      expect(detail.body.plan).toContain("steps: 5000")

      // Deleting a running run is refused; a queued run can be cancelled once, resumed, and deleted.
      expect((yield* call(`${daemon.url}/v1/runs/${long.body.id}`, { method: "DELETE" })).status).toBe(409)
      expect((yield* call(`${daemon.url}/v1/runs/${queued.body.id}/cancel`, { method: "POST" })).body.status).toBe("cancelled")
      const again = yield* call(`${daemon.url}/v1/runs/${queued.body.id}/cancel`, { method: "POST" })
      expect(again.status).toBe(409)
      expect(again.body).toMatchObject({ _tag: "RunStateConflict", status: "cancelled" })
      expect((yield* call(`${daemon.url}/v1/runs/${queued.body.id}/resume`, { method: "POST" })).body.status).toBe("queued")
      expect((yield* call(`${daemon.url}/v1/runs/${queued.body.id}/resume`, { method: "POST" })).status).toBe(409)
      expect((yield* call(`${daemon.url}/v1/runs/${queued.body.id}`, { method: "DELETE" })).status).toBe(204)
      expect((yield* call(`${daemon.url}/v1/runs/${queued.body.id}`)).status).toBe(404)

      // Cancelling a running run stops it at a step boundary, resumably.
      expect((yield* call(`${daemon.url}/v1/runs/${long.body.id}/cancel`, { method: "POST" })).status).toBe(200)
      yield* waitForStatus(daemon, long.body.id, ["cancelled"])
      expect(events(detail.body.folder).at(-1).phase).toBe("interrupted")

      // A run that finishes: its report, checkpoints and a download that matches its sha256.
      const done = yield* submit(daemon, tinyPlan("model"), folder)
      const finished = yield* waitForStatus(daemon, done.body.id, ["finished"])
      expect(finished.progress).toMatchObject({ strategy: "ptl", phase: "finished", acceptedStage: "stages/ptl-001" })
      // A GET changes nothing: the report the run wrote stays as it was.
      const reportFile = join(tmp, "data", "runs", done.body.id, "report.html")
      const written = { text: readFileSync(reportFile, "utf8"), mtime: statSync(reportFile).mtimeMs }
      const report = yield* call(`${daemon.url}/v1/runs/${done.body.id}/report`)
      expect(report.status).toBe(200)
      expect({ text: readFileSync(reportFile, "utf8"), mtime: statSync(reportFile).mtimeMs }).toEqual(written)
      expect(report.headers.get("content-type")).toContain("text/html")
      expect(report.text).toContain("<html")
      const checkpoints = (yield* call(`${daemon.url}/v1/runs/${done.body.id}/checkpoints`)).body
      expect(checkpoints.map((c: { stage: string; final: boolean }) => [c.stage, c.final])).toEqual([["ptl-000", false], ["ptl-001", true]])
      const weights = checkpoints[1].files.find((f: { name: string }) => f.name === "model.safetensors")
      const download = yield* Effect.promise(() => fetch(`${daemon.url}/v1/runs/${done.body.id}/checkpoints/ptl-001/model.safetensors`))
      const bytes = Buffer.from(yield* Effect.promise(() => download.arrayBuffer()))
      expect(download.headers.get("x-checksum-sha256")).toBe(weights.sha256)
      expect(createHash("sha256").update(bytes).digest("hex")).toBe(weights.sha256)
      expect(bytes.equals(readFileSync(join(tmp, "data", "runs", done.body.id, "stages", "ptl-001", "model.safetensors")))).toBe(true)
      for (const path of ["ptl-001/..%2F..%2Frun.json", "ptl-009/model.safetensors", "ptl-001/plan.yaml"]) {
        expect((yield* call(`${daemon.url}/v1/runs/${done.body.id}/checkpoints/${path}`)).status).toBe(404)
      }

      const metrics = (yield* call(`${daemon.url}/metrics`)).text
      expect(metrics).toContain('simmer_runs{status="finished"} 1')
      expect(metrics).toContain('simmer_runs{status="cancelled"} 1')
      expect(metrics).toMatch(/simmer_evaluation_seconds \d/)

      // Ids that are not the server's cannot name a run, let alone a path.
      expect((yield* call(`${daemon.url}/v1/runs/20991231-235959-abcdef`)).status).toBe(404)
      expect((yield* call(`${daemon.url}/v1/runs/..%2F..%2Fetc`)).status).toBe(400)
      expect((yield* call(`${daemon.url}/v1/runs/20991231-235959-abcdef/cancel`, { method: "POST" })).status).toBe(404)
    }), 120_000)

  it.live("runs a plan that recovers with GRPO: each run gets the reward its plan names", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const grpo = tinyPlan("model").replace(
        /tuner: .*\n/,
        "tuner: [{ steps: 1, batchSize: 2, lr: 0.01, maxSeqLen: 48 }, { kind: grpo, steps: 1, prompts: 1, rollouts: 2, maxNewTokens: 4 }]\nreward: [{ rule: arith }]\n"
      )
      const submitted = yield* submit(daemon, grpo, `?folder=${encodeURIComponent(tmp)}`)
      expect(submitted.status).toBe(201)
      const finished = yield* waitForStatus(daemon, submitted.body.id, ["finished", "failed"])
      expect(finished).toMatchObject({ status: "finished" })
      const tuned = events(finished.folder).filter((e) => e.tune !== undefined).map((e) => e.tune.kind)
      expect(tuned).toContain("grpo")
    }), 120_000)

  it.live("refuses bad plans (400 with lines), paths out of the roots (403), big bodies (413) and plans that never fit (422)", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const outside = yield* tempDir
      yield* writeTinyRunInputs(outside)
      writeFileSync(join(outside, "train.jsonl"), '{"text": "x"}\n')
      symlinkSync(join(outside, "model"), join(tmp, "link"))
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp], memoryGib: 0.05, maxBodyBytes: 4096 })
      const folder = `?folder=${encodeURIComponent(tmp)}`

      const malformed = yield* submit(daemon, "model: [unclosed\ntarget: {", folder)
      expect(malformed.status).toBe(400)
      expect(malformed.body._tag).toBe("InvalidSubmission")
      expect(malformed.body.problems[0]).toMatch(/^line \d+: /)
      const invalid = yield* submit(daemon, tinyPlan("model").replace("iterations: 1", "iterations: 0\niteration: 2"), folder)
      expect(invalid.status).toBe(400)
      expect(invalid.body.problems).toEqual([
        expect.stringMatching(/^line 4: iterations: /),
        expect.stringMatching(/^line 5: iteration: unknown key "iteration"; did you mean iterations\?/)
      ])
      const missing = yield* submit(daemon, tinyPlan("no-such-model"), folder)
      expect(missing.status).toBe(400)
      expect(missing.body.problems[0]).toContain(`${join(tmp, "no-such-model")} does not exist`)
      // A typo of the bundled model's name, read from a folder inside the roots or outside them.
      const typo = yield* submit(daemon, tinyPlan("basee"), folder)
      expect(typo.status).toBe(400)
      expect(typo.body.problems[0]).toContain(`${join(tmp, "basee")} does not exist; did you mean base, the bundled model?`)
      const typoOutside = yield* submit(daemon, tinyPlan("basee"), `?folder=${encodeURIComponent(outside)}`)
      expect(typoOutside.status).toBe(400)
      expect(typoOutside.body.problems).toEqual(['model: "basee" is not a bundled model; did you mean base?'])

      for (const model of ["../" + outside.split("/").at(-1) + "/model", join(outside, "model"), "link"]) {
        const refused = yield* submit(daemon, tinyPlan(model), folder)
        expect(refused.status, model).toBe(403)
        expect(refused.body._tag).toBe("PathNotAllowed")
        expect(refused.body.message).toContain("outside the folders this daemon may read")
      }
      const link = yield* submit(daemon, tinyPlan("link"), folder)
      expect(link.body.message).toContain(`(it resolves to ${join(outside, "model")})`)
      const dataOut = yield* submit(daemon, tinyPlan("model").replace("tune: [{ task: arith }]", `tune: [{ file: ${join(outside, "train.jsonl")} }]`), folder)
      expect(dataOut.status).toBe(403)
      expect(dataOut.body.path).toBe(join(outside, "train.jsonl"))

      const big = yield* submit(daemon, tinyPlan("model") + `# ${"x".repeat(5000)}\n`, folder)
      expect(big.status).toBe(413)
      expect(big.body).toMatchObject({ _tag: "BodyTooLarge", limitBytes: 4096 })

      const huge = yield* submit(daemon, tinyPlan("model", { batchSize: 50_000 }), folder)
      expect(huge.status).toBe(422)
      expect(huge.body.message).toMatch(/needs about \d+\.\d\d GiB of host memory at its peak/)
      expect(huge.body.requiredBytes).toBeGreaterThan(huge.body.budgetBytes)
      const otherBackend = yield* submit(daemon, tinyPlan("model").replace("backend: cpu", "backend: wasm"), folder)
      expect(otherBackend.status).toBe(422)
      expect(otherBackend.body.message).toContain("this daemon computes on cpu")
      // What `simmer run` and `simmer plan check` refuse, from the same checks (issue 24.10, 24.11).
      const rank = yield* submit(daemon, tinyPlan("model").replace("tuner: {", "tuner: { adapter: { rank: 9 },"), folder)
      expect(rank.status).toBe(400)
      expect(rank.body.problems).toEqual([expect.stringMatching(/^line 12: tuner\.adapter\.rank: rank 9 is above 8, the smaller side of the k projection/)])
      const misfit = yield* submit(daemon, tinyPlan("model").replace(/tuner: .*\n/, "tuner: { kind: grpo, steps: 1 }\nreward: [{ rule: program }]\n"), folder)
      expect(misfit.status).toBe(400)
      expect(misfit.body.message).toContain("The reward rule program grades the program task (programs run against its hidden tests), but GRPO would tune on arith")

      // Nothing was queued or written for any of them.
      expect((yield* call(`${daemon.url}/v1/runs`)).body.total).toBe(0)
      expect((yield* submit(daemon, tinyPlan("model"), folder)).status).toBe(201)
    }), 60_000)

  it.live("every error has a JSON body with its reason: bad query parameters (400), unknown routes (404), wrong methods (405)", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const run = `${daemon.url}/v1/runs/20991231-235959-abcdef`
      const bad: ReadonlyArray<[string, string]> = [
        [`${daemon.url}/v1/runs?limit=abc`, "limit"],
        [`${daemon.url}/v1/runs?status=bogus`, "status"],
        [`${daemon.url}/v1/runs?limit=0`, "limit"],
        [`${run}/events?after=abc`, "after"]
      ]
      for (const [url, parameter] of bad) {
        const reply = yield* call(url)
        expect(reply.status, url).toBe(400)
        expect(reply.body, url).toMatchObject({ _tag: "BadRequest" })
        expect(reply.body.message, url).toContain(parameter)
      }
      const priority = yield* submit(daemon, tinyPlan("model"), "?priority=high")
      expect(priority.status).toBe(400)
      expect(priority.body.message).toContain("priority")

      const unknown = yield* call(`${daemon.url}/v1/nothing-here`)
      expect(unknown.status).toBe(404)
      expect(unknown.body).toMatchObject({ _tag: "RouteNotFound" })
      expect(unknown.body.message).toContain("/v1/nothing-here")

      const put = yield* call(run, { method: "PUT", body: "x" })
      expect(put.status).toBe(405)
      expect(put.headers.get("allow")).toBe("GET, DELETE")
      expect(put.body.message).toContain("GET, DELETE")
    }))

  it.live("with a token: 401 without it or with a wrong one; /healthz and the page need none", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp], token: Redacted.make("s3cret-token") })
      for (const path of ["/v1/runs", "/v1/runs/20991231-235959-abcdef", "/metrics", "/readyz"]) {
        const none = yield* call(`${daemon.url}${path}`)
        expect(none.status, path).toBe(401)
        expect(none.body.message).toContain("requires a bearer token")
        expect((yield* call(`${daemon.url}${path}`, { headers: { authorization: "Bearer s3cret-tokem" } })).status, path).toBe(401)
      }
      expect((yield* submit(daemon, tinyPlan("model"))).status).toBe(401)
      expect((yield* call(`${daemon.url}/v1/runs`, { headers: { authorization: "Bearer s3cret-token" } })).status).toBe(200)
      expect((yield* call(`${daemon.url}/healthz`)).status).toBe(200)
      const page = yield* call(`${daemon.url}/`)
      expect(page.status).toBe(200)
      expect(page.text).toContain("<title>simmer</title>")
      // No CORS: a browser on another origin gets no permission to read the API.
      expect((yield* call(`${daemon.url}/v1/runs`, { headers: { origin: "http://elsewhere.test" } })).headers.get("access-control-allow-origin")).toBeNull()
    }))

  it.live("SSE: a watcher that disconnects mid-run and reconnects with Last-Event-ID gets every event once, in order", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const run = (yield* submit(daemon, tinyPlan("model", { iterations: 3, steps: 3 }), `?folder=${encodeURIComponent(tmp)}`)).body

      // First connection: read until three logged states have arrived, then hang up.
      const first = yield* Effect.promise(async () => {
        const controller = new AbortController()
        const response = await fetch(`${daemon.url}/v1/runs/${run.id}/events`, { signal: controller.signal })
        expect(response.headers.get("content-type")).toContain("text/event-stream")
        const reader = response.body!.getReader()
        let text = ""
        while (parseSse(text).filter((m) => m.event === "state").length < 3) {
          const { value, done } = await reader.read()
          if (done) break
          text += new TextDecoder().decode(value)
        }
        controller.abort()
        // Only whole messages count: a client keeps what ended in a blank line.
        return parseSse(text.slice(0, text.lastIndexOf("\n\n") + 2))
      })
      const lastId = first.filter((m) => m.id !== undefined).at(-1)!.id!
      const second = yield* call(`${daemon.url}/v1/runs/${run.id}/events`, { headers: { "last-event-id": lastId } })
      const rest = parseSse(second.text)
      expect(rest.at(-1)).toMatchObject({ event: "status", data: { status: "finished" } })

      const seqs = [...first, ...rest].filter((m) => m.event === "state").map((m) => Number(m.id))
      const logged = events(join(tmp, "data", "runs", run.id)).map((e) => e.seq)
      expect(logged.length).toBeGreaterThan(10)
      expect(seqs).toEqual(logged)
      expect([...first, ...rest].filter((m) => m.event === "state").every((m) => m.data.seq === Number(m.id))).toBe(true)

      // NDJSON for scripts, from a given seq.
      const ndjson = yield* call(`${daemon.url}/v1/runs/${run.id}/events?format=ndjson&after=${logged.length - 3}`)
      const lines = ndjson.text.trim().split("\n").map((l) => JSON.parse(l))
      expect(lines.map((l) => l.type)).toEqual(["state", "state", "status"])
      expect(lines[0].event.seq).toBe(logged.length - 2)
    }), 120_000)
})
