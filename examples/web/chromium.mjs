// chromium.mjs starts the headless Chromium of the browser tests
// (browser_test.mjs, origin_test.mjs) through playwright-core: Debian's
// /usr/bin/chromium (or $CHROMIUM) in a profile of its own, with the flags
// that keep it off the network except for the pages it is sent to.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// timeout bounds each wait, in milliseconds.
export const timeout = 15000;

// launch starts Chromium with extraArgs after the common flags and returns
// its first page and close, which ends the browser and removes its profile.
export async function launch(extraArgs = []) {
  const userDataDir = mkdtempSync(join(tmpdir(), "vanemq-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      timeout,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ...extraArgs,
      ],
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { page, close };
}
