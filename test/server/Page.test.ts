/**
 * The web page in a real headless browser (Debian's chromium, driven by playwright-core): the
 * page loads, a plan submitted through its form appears in the list and reaches `finished` by
 * the live updates alone (no reload), and the run's page draws its plots and offers the report;
 * the list and a run's page follow a run through a daemon restart.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { type BrowserContext, chromium } from "playwright-core"
import { startDaemon, submit, tinyPlan, writeTinyRunInputs } from "../helpers/daemon.ts"
import { loggedEvents, startDaemonProcess, waitUntil } from "../helpers/daemonProcess.ts"
import { tempDir } from "../io/_support.ts"

/** Debian's chromium (installed by .ci/run), or the browser CHROMIUM names. */
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium"

const headlessFlags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run"
]

/** A headless browser with a fresh profile (nothing from another run of the browser leaks in), for the scope. */
const openBrowser = (profile: string) =>
  Effect.acquireRelease(
    Effect.promise(() => chromium.launchPersistentContext(profile, { executablePath: browserPath, headless: true, args: headlessFlags })),
    (context) => Effect.promise(() => context.close())
  )

const newPage = async (browser: BrowserContext, errors: Array<string>) => {
  const page = await browser.newPage()
  page.on("pageerror", (error) => errors.push(error.message))
  return page
}

/** The y-axis labels of a plot that shows percentages, as numbers. */
const percentLabels = async (page: import("playwright-core").Page, plot: string) =>
  (await page.locator(`svg[aria-label="${plot}"] > text`).allTextContents()).filter((t) => t.endsWith("%")).map((t) => Number.parseFloat(t))

describe("the web page", () => {
  it.live("loads, shows a run submitted through its form reach finished live, and draws the run's plots", () =>
    Effect.gen(function*() {
      expect(existsSync(browserPath), `no browser at ${browserPath}: install Debian's chromium (.ci/run does) or set CHROMIUM`).toBe(true)
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const browser = yield* openBrowser(join(tmp, "profile"))
      yield* Effect.promise(async () => {
        const page = browser.pages()[0] ?? (await browser.newPage())
        const errors: Array<string> = []
        page.on("pageerror", (error) => errors.push(error.message))
        await page.goto(daemon.url)
        expect(await page.title()).toBe("simmer")
        await page.waitForSelector("text=No runs yet.")

        await page.fill("#plan", tinyPlan(join(tmp, "model"), { iterations: 2, steps: 4 }))
        await page.fill("#name", "from the page")
        await page.click("#submit")
        const row = page.locator("tr", { hasText: "from the page" })
        await row.waitFor()
        await row.locator(".status.finished").waitFor({ timeout: 120_000 })
        // A finished run shows how the loop ended, the target reached or not.
        expect(await row.locator(".progress").textContent()).toMatch(/ptl reached its target: \d+\.\d% left/)

        await row.locator("a").click()
        await page.waitForSelector("#run-status.finished")
        // The status comes from the run, the plots from its event stream: they may follow a moment later.
        for (const plot of ["parameters left", "accuracy per iteration", "tuning loss per step"]) {
          await page.locator(`svg[aria-label="${plot}"] path`).first().waitFor({ state: "attached", timeout: 30_000 })
        }
        expect(await page.locator("#events tr").count()).toBeGreaterThan(8)
        expect(await page.locator("#cancel").isDisabled()).toBe(true)
        expect(await page.locator("#report").isVisible()).toBe(true)
        expect(errors).toEqual([])
      })
    }), 180_000)

  it.live("plots one loss series per strategy, and a flat accuracy on an axis around it within 0–100%", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      // The tiny model's program accuracy is 0% throughout: a flat series.
      const id = (yield* submit(daemon, tinyPlan("model", { iterations: 2, steps: 4 }) + "baselines: [one-shot]\n", `?folder=${encodeURIComponent(tmp)}`)).body.id
      const browser = yield* openBrowser(join(tmp, "profile"))
      const errors: Array<string> = []
      yield* Effect.promise(async () => {
        const page = await newPage(browser, errors)
        await page.goto(`${daemon.url}/#run=${id}`)
        await page.locator("#run-status.finished").waitFor({ timeout: 120_000 })
        const losses = page.locator('svg[aria-label="tuning loss per step"]')
        expect(await losses.locator("path").count()).toBe(2)
        expect(await losses.locator("> text").allTextContents()).toEqual(expect.arrayContaining(["ptl", "one-shot"]))
        const axis = await percentLabels(page, "accuracy per iteration")
        expect(axis).toHaveLength(2)
        for (const label of axis) expect(label).toBeGreaterThanOrEqual(0)
        for (const label of axis) expect(label).toBeLessThanOrEqual(100)
      })
      expect(errors).toEqual([])
    }), 180_000)

  it.live("the list and a run's page follow a run live, through a daemon restart, without a reload", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const data = join(tmp, "data")
      const first = yield* Effect.promise(() => startDaemonProcess(data, [tmp]))
      // One quick iteration, then a long tuning to stop the daemon in.
      const plan = tinyPlan("model", { iterations: 2 }).replace("steps: 1,", "steps: [1, 200],")
      const id = (yield* submit(first, plan, `?folder=${encodeURIComponent(tmp)}`)).body.id as string
      const browser = yield* openBrowser(join(tmp, "profile"))
      const errors: Array<string> = []
      yield* Effect.promise(async () => {
        const list = await newPage(browser, errors)
        await list.goto(first.url)
        const row = list.locator(`tr[data-id="${id}"]`)
        const run = await newPage(browser, errors)
        await run.goto(`${first.url}/#run=${id}`)

        // The list row follows the run's logged states while it runs.
        await row.locator(".progress", { hasText: /ptl iteration 2 (pruned|tuned)/ }).waitFor({ timeout: 60_000 })
        expect(await row.locator(".status").textContent()).toBe("running")

        await waitUntil(() => loggedEvents(join(data, "runs", id)).some((e) => e.phase === "pruned" && e.iteration === 2), "the long tuning")
        first.child.kill("SIGSTOP")
        first.child.kill("SIGTERM")
        first.child.kill("SIGCONT")
        expect(await first.exited).toBe(75)
        const second = await startDaemonProcess(data, [tmp], ["--port", new URL(first.url).port])
        try {
          await row.locator(".status.finished").waitFor({ timeout: 120_000 })
          // Finished: the row says how the loop ended.
          expect(await row.locator(".progress").textContent()).toMatch(/ptl reached its target: \d+\.\d% left/)
          await run.locator("#run-status.finished").waitFor({ timeout: 30_000 })
          expect(await run.locator("#cancel").isDisabled()).toBe(true)
          expect(await run.locator("#conn").textContent()).not.toContain("reconnecting")
        } finally {
          second.child.kill("SIGTERM")
          await second.exited
        }
      })
      expect(errors).toEqual([])
    }), 300_000)
})
