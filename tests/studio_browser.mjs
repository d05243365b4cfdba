// Drive the review studio in headless Chromium (Debian's /usr/bin/chromium through playwright-core) the way
// a reviewer would, and report what it saw as JSON on stdout. Used by tests/test_studio_browser.py.
//   node tests/studio_browser.mjs --url http://127.0.0.1:PORT/ --out DIR --chromium /usr/bin/chromium \
//        --modules examples/jewish-timeline/frontend --regen ENTRY_ID --xss ENTRY_ID --token TOKEN
import { createRequire } from "node:module";
import path from "node:path";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const base = arg("url").replace(/\/$/, "");
const out = arg("out");
const regenId = arg("regen");
const xssId = arg("xss");
const require = createRequire(path.resolve(arg("modules"), "package.json"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: arg("chromium", "/usr/bin/chromium"),
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const report = { steps: [], consoleErrors: [], pageErrors: [], dialogs: [], failedRequests: [] };
const step = (name, data) => report.steps.push({ name, ...data });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  // (from the log-in step on: the first request is refused on purpose)
  page.on("console", (msg) => { if (msg.type() === "error" && report.steps.length > 0) report.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => report.pageErrors.push(String(err)));
  page.on("response", (res) => {
    if (res.status() >= 400 && report.steps.length > 0) report.failedRequests.push(`${res.url()} HTTP ${res.status()}`);
  });
  // the reject key asks for a reason; an alert() would mean a title ran as script
  page.on("dialog", async (dialog) => {
    report.dialogs.push({ type: dialog.type(), message: dialog.message() });
    if (dialog.type() === "prompt") await dialog.accept("anachronistic clothing");
    else await dialog.dismiss();
  });
  const cards = () => page.$$eval("#grid .card", (els) => els.map((e) => ({
    id: e.dataset.entry, render: e.dataset.render, review: e.dataset.review,
    title: e.querySelector(".title").textContent, error: e.querySelector(".error")?.textContent ?? null,
    badges: [...e.querySelectorAll(".badge")].map((b) => b.textContent.trim()),
  })));

  // 0. without the token: refused; the log-in address sets the session cookie and lands on the grid
  const refused = await page.goto(`${base}/`, { waitUntil: "load" });
  const token = arg("token");
  await page.goto(`${base}/login?token=${encodeURIComponent(token)}`, { waitUntil: "load" });
  await page.waitForURL(`${base}/`, { waitUntil: "load" });  // the log-in page moves on to the grid itself
  step("login", { refused: refused.status(), landed: page.url(),
    cookies: (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite })) });

  // 1. the grid: every entry
  await page.goto(`${base}/`, { waitUntil: "load" });
  step("grid", { cards: await cards() });
  const xssTitle = await page.$eval(`#card-${xssId} .title`, (e) => ({ text: e.textContent, children: e.children.length }));
  step("xss", { ...xssTitle, scripts: await page.$$eval("script", (s) => s.map((x) => x.src || x.textContent)) });

  // 2. filter to failed (the form, as a person would)
  await page.check('input[name="failed"]');
  await Promise.all([page.waitForURL(/failed=1/), page.click('.filters button[type="submit"]')]);
  step("failed", { url: page.url(), cards: await cards() });

  // 3. awaiting review only; keyboard: a, j a, j a (approve three), j r (reject with a reason)
  await page.uncheck('input[name="failed"]');
  await page.check('input[name="awaiting"]');
  await Promise.all([page.waitForURL(/awaiting=1/), page.click('.filters button[type="submit"]')]);
  const queue = await cards();
  step("awaiting", { cards: queue });
  await page.evaluate(() => { window.__noReload = "still here"; });
  for (let i = 0; i < 3; i++) {
    if (i > 0) await page.keyboard.press("j");
    await page.keyboard.press("a");
    await page.waitForSelector(`#card-${queue[i].id}[data-review="approved"]`);
  }
  await page.keyboard.press("j");
  await page.keyboard.press("r");
  await page.waitForSelector(`#card-${queue[3].id} .state-failed`);
  step("reviewed", { cards: await cards(), marker: await page.evaluate(() => window.__noReload ?? null),
    current: await page.$eval(".card.current", (e) => e.dataset.entry) });
  await page.screenshot({ path: path.join(out, "grid-reviewed.png") });

  // 4. regenerate on the entry page: the new render appears without a reload; then pin the earlier one
  await page.goto(`${base}/entries/${regenId}`, { waitUntil: "load" });
  const before = await page.$$eval(".render[data-render]", (els) => els.map((e) => Number(e.dataset.render)));
  await page.evaluate(() => { window.__noReload = "still here"; });
  await page.keyboard.press("g");
  await page.waitForFunction((n) => document.querySelectorAll(".render[data-render]").length === n + 1, before.length,
    { timeout: 120_000 });
  const after = await page.$$eval(".render[data-render]", (els) => els.map((e) => ({
    id: Number(e.dataset.render), review: e.dataset.review, seed: e.querySelector(".seed").textContent,
  })));
  step("regenerated", { before, after, marker: await page.evaluate(() => window.__noReload ?? null),
    job: await page.evaluate(() => document.body.dataset.lastJob ?? null) });
  await page.keyboard.press("j");
  await page.keyboard.press("p");
  await page.waitForSelector(`#render-${before[0]}.is-published`);
  step("pinned", {
    published: await page.$$eval(".render.is-published", (els) => els.map((e) => Number(e.dataset.render))),
    badges: await page.$$eval(".summary .badge", (els) => els.map((b) => b.textContent.trim())),
    decisions: await page.$$eval(".decisions tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))),
    marker: await page.evaluate(() => window.__noReload ?? null),
  });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(out, "entry.png") });

  // 5. the whole catalogue after review, for the docs
  await page.goto(`${base}/`, { waitUntil: "load" });
  await page.keyboard.press("j");
  step("final", { cards: await cards() });
  await page.screenshot({ path: path.join(out, "grid.png") });
} catch (err) {
  report.error = String(err && err.stack ? err.stack : err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
