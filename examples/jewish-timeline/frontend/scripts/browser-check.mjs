// Open the built timeline in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// and report, as JSON on stdout: the images in view (naturalWidth, currentSrc), console errors, failed
// requests and the cumulative layout shift; a screenshot is written to --screenshot.
//   node scripts/browser-check.mjs --url http://127.0.0.1:8000/ --screenshot shot.png [--chromium /usr/bin/chromium]
import { chromium } from "playwright-core";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const url = arg("url");
const screenshot = arg("screenshot", "timeline.png");
const executablePath = arg("chromium", process.env.CHROMIUM ?? "/usr/bin/chromium");
if (!url) {
  console.error("usage: browser-check.mjs --url URL [--screenshot FILE] [--chromium PATH]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const report = { url, consoleErrors: [], pageErrors: [], failedRequests: [], images: [], cls: null, shifts: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  // record layout shifts from the very start, before the app's script runs
  await page.addInitScript(() => {
    window.__cls = 0;
    window.__shifts = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (!e.hadRecentInput) {
          window.__cls += e.value;
          window.__shifts.push({ value: e.value, sources: (e.sources || []).map((s) => s.node && s.node.nodeName) });
        }
      }
    }).observe({ type: "layout-shift", buffered: true });
  });
  page.on("console", (msg) => {
    if (msg.type() === "error") report.consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => report.pageErrors.push(String(err)));
  page.on("requestfailed", (req) => report.failedRequests.push(`${req.url()} ${req.failure()?.errorText ?? ""}`));
  page.on("response", (res) => {
    if (res.status() >= 400) report.failedRequests.push(`${res.url()} HTTP ${res.status()}`);
  });

  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("picture img");
  // wait until every image in the viewport has finished loading (or failed)
  await page.waitForFunction(() => {
    const inView = [...document.images].filter((img) => {
      const r = img.getBoundingClientRect();
      return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
    });
    return inView.length > 0 && inView.every((img) => img.complete);
  }, null, { timeout: 20000 });
  await page.waitForTimeout(500); // let late layout shifts be observed
  report.images = await page.evaluate(() =>
    [...document.images]
      .filter((img) => {
        const r = img.getBoundingClientRect();
        return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
      })
      .map((img) => ({
        id: img.dataset.limnerId ?? null,
        naturalWidth: img.naturalWidth,
        currentSrc: img.currentSrc,
        width: img.getAttribute("width"),
        height: img.getAttribute("height"),
        loading: img.loading,
      })),
  );
  report.cls = await page.evaluate(() => window.__cls);
  report.shifts = await page.evaluate(() => window.__shifts);
  report.title = await page.title();
  report.events = await page.locator("li.event").count();
  await page.screenshot({ path: screenshot, fullPage: false });
  report.screenshot = screenshot;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report, null, 2));
