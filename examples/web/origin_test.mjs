// origin_test.mjs opens WebSocket connections from real pages for
// origin_test.go, which judges what they show:
//
//	node origin_test.mjs CASES_JSON
//
// CASES_JSON is a list of {name, page, ws, topic, send, want}. Chromium
// resolves every name to 127.0.0.1 (--host-resolver-rules), so a page of
// http://evil.test:PORT/ is a DNS-rebinding page: another site's name, this
// machine's address. For each case the script opens page, and from it
//   - a plain WebSocket to ws (subprotocol "mqtt"): did it open, and the
//     close code if not;
//   - MQTT.js (the page's global mqtt, no reconnect) to ws: on connect it
//     subscribes to topic, publishes send and waits until every text of
//     want has arrived; without a connection, it waits for the close;
// then prints the line "result: " followed by {name, raw, mqtt, console}
// as JSON, console being the page's console lines (Chromium writes there
// why a WebSocket failed). It exits 0 once every case is done, whatever
// they showed; 1 when it could not run them.
import { launch, timeout } from "./chromium.mjs";

const [casesJSON] = process.argv.slice(2);
if (!casesJSON) {
  console.error("usage: node origin_test.mjs CASES_JSON");
  process.exit(2);
}
const cases = JSON.parse(casesJSON);

// attempt runs in the page: the plain WebSocket, then MQTT.js, each
// bounded by limit milliseconds.
async function attempt({ ws, topic, send, want, limit }) {
  const raw = await new Promise((resolve) => {
    const s = new WebSocket(ws, "mqtt");
    const timer = setTimeout(() => resolve({ opened: false, timedOut: true }), limit);
    s.onopen = () => { clearTimeout(timer); resolve({ opened: true }); s.close(); };
    s.onclose = (e) => { clearTimeout(timer); resolve({ opened: false, code: e.code }); };
  });
  const result = await new Promise((resolve) => {
    const r = { connected: false, closed: false, errors: [], messages: [] };
    const client = mqtt.connect(ws, {
      protocolVersion: 5, reconnectPeriod: 0, connectTimeout: limit,
      clientId: "origin-" + Math.random().toString(16).slice(2, 10),
    });
    const done = () => { clearTimeout(timer); client.end(true); resolve(r); };
    const timer = setTimeout(() => { r.timedOut = true; done(); }, limit);
    client.on("error", (err) => r.errors.push(err.message));
    client.on("close", () => { r.closed = true; if (!r.connected) done(); });
    client.on("connect", () => {
      r.connected = true;
      client.subscribe(topic, { qos: 1 }, (err) => {
        if (err) { r.errors.push("subscribe: " + err.message); done(); return; }
        client.publish(topic, send, { qos: 1 });
      });
    });
    client.on("message", (_, payload) => {
      r.messages.push(payload.toString());
      if (want.every((w) => r.messages.includes(w))) done();
    });
  });
  return { raw, mqtt: result };
}

let browser;
let code = 1;
try {
  browser = await launch(["--host-resolver-rules=MAP * 127.0.0.1", "--no-proxy-server"]);
  const { page } = browser;
  let lines = [];
  page.on("console", (m) => lines.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => lines.push(`page error: ${e.message}`));
  for (const c of cases) {
    lines = [];
    await page.goto(c.page);
    await page.waitForFunction(() => typeof mqtt !== "undefined");
    const r = await page.evaluate(attempt, { ...c, limit: timeout / 2 });
    console.log("result: " + JSON.stringify({ name: c.name, ...r, console: lines }));
  }
  code = 0;
} catch (err) {
  console.error(`failed: ${err.message}`);
} finally {
  if (browser) await browser.close();
}
process.exit(code);
