// browser_test.mjs drives the chat page in headless Chromium for main_test.go:
//
//	node browser_test.mjs PAGE_URL SEND_TEXT EXPECT_TEXT
//
// It opens PAGE_URL, waits for the status "connected" and prints the line
// "connected", types SEND_TEXT and clicks Send, waits until the page lists
// SEND_TEXT (the round trip through the broker) and EXPECT_TEXT (published
// by the Go test once it read "connected"), then prints the line
// "messages: " followed by the listed messages as JSON, and exits 0. Any
// failure prints the page's status and messages and exits 1.
import { launch, timeout } from "./chromium.mjs";

const [pageURL, sendText, expectText] = process.argv.slice(2);
if (!pageURL || !sendText || !expectText) {
  console.error("usage: node browser_test.mjs PAGE_URL SEND_TEXT EXPECT_TEXT");
  process.exit(2);
}

let browser;
let code = 1;
try {
  browser = await launch();
  const { page } = browser;
  page.on("console", (m) => console.error(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  try {
    await page.goto(pageURL);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "connected");
    console.log("connected");

    await page.fill("#message", sendText);
    await page.click("#send");
    const listed = (text) => page.waitForFunction(
      (t) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent === t), text);
    await listed(sendText);
    await listed(expectText);
    const messages = await page.$$eval("#messages li", (lis) => lis.map((li) => li.textContent));
    console.log("messages: " + JSON.stringify(messages));
    code = 0;
  } catch (err) {
    console.error(`failed: ${err.message}`);
    const state = await page.evaluate(() => ({
      status: document.getElementById("status")?.textContent,
      messages: [...document.querySelectorAll("#messages li")].map((li) => li.textContent),
    })).catch(() => null);
    console.error(`page state: ${JSON.stringify(state)}`);
  }
} catch (err) {
  console.error(`failed: ${err.message}`);
} finally {
  if (browser) await browser.close();
}
process.exit(code);
