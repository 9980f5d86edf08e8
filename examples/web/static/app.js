// The chat room: MQTT.js (the global `mqtt` from mqtt.min.js) over
// WebSocket to the broker named in config.json; subscribe to the room's
// topic, publish what the user types, list what arrives.
(async function () {
  const status = document.getElementById("status");
  const list = document.getElementById("messages");
  const input = document.getElementById("message");
  const setStatus = (s) => { status.textContent = s; status.className = s; };

  const cfg = await (await fetch("config.json")).json();
  document.getElementById("topic").textContent = cfg.topic;

  const client = mqtt.connect(cfg.url, {
    protocolVersion: 5,
    clientId: "web-" + Math.random().toString(16).slice(2, 10),
    reconnectPeriod: 1000,
  });
  client.on("connect", () => {
    client.subscribe(cfg.topic, { qos: 1 }, (err) => {
      setStatus(err ? "error: " + err.message : "connected");
    });
  });
  client.on("reconnect", () => setStatus("reconnecting"));
  client.on("close", () => { if (status.textContent === "connected") setStatus("disconnected"); });
  client.on("error", (err) => setStatus("error: " + err.message));
  client.on("message", (topic, payload) => {
    const li = document.createElement("li");
    li.textContent = payload.toString();
    list.appendChild(li);
  });

  document.getElementById("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (text === "" || !client.connected) return;
    client.publish(cfg.topic, text, { qos: 1 });
    input.value = "";
  });
})();
