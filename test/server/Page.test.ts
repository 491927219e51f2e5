/**
 * The web page in a real headless browser (Debian's chromium, driven by playwright-core): the
 * page loads, a plan submitted through its form appears in the list and reaches `finished` by
 * the live updates alone (no reload), and the run's page draws its plots and offers the report.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import { startDaemon, tinyPlan, writeTinyRunInputs } from "../helpers/daemon.ts"
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

describe("the web page", () => {
  it.live("loads, shows a run submitted through its form reach finished live, and draws the run's plots", () =>
    Effect.gen(function*() {
      expect(existsSync(browserPath), `no browser at ${browserPath}: install Debian's chromium (.ci/run does) or set CHROMIUM`).toBe(true)
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const browser = yield* Effect.acquireRelease(
        // A fresh profile folder: nothing from another run of the browser leaks in.
        Effect.promise(() => chromium.launchPersistentContext(join(tmp, "profile"), { executablePath: browserPath, headless: true, args: headlessFlags })),
        (context) => Effect.promise(() => context.close())
      )
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
        for (const plot of ["parameters left", "accuracy per iteration", "tuning loss per step"]) {
          expect(await page.locator(`svg[aria-label="${plot}"] path`).count(), plot).toBeGreaterThan(0)
        }
        expect(await page.locator("#events tr").count()).toBeGreaterThan(8)
        expect(await page.locator("#cancel").isDisabled()).toBe(true)
        expect(await page.locator("#report").isVisible()).toBe(true)
        expect(errors).toEqual([])
      })
    }), 180_000)
})
