package vanemqcmd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/listeners/tlsfiles/tlstest"
)

// connackOver sends an anonymous CONNECT over conn and returns the CONNACK
// return code.
func connackOver(t *testing.T, conn net.Conn) byte {
	t.Helper()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(connectPacket("c-listener", "", "")); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	first, body, err := readPacket(bufio.NewReader(conn))
	if err != nil || first != 0x20 || len(body) < 2 {
		t.Fatalf("CONNACK: %#x %x %v", first, body, err)
	}
	return body[1]
}

// Every listener type the config names serves MQTT: plain TCP, TLS with
// certificates from files relative to the config, WebSocket (a message
// published over ws reaches a TCP subscriber) and a Unix socket; the http
// admin listener answers /healthz and its API with the configured token.
func TestRunListenerTypes(t *testing.T) {
	pki := tlstest.New(t)
	sock := filepath.Join(t.TempDir(), "vanemq.sock")
	config := fmt.Sprintf(`allow_anonymous: true
listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
  - id: tls
    type: tcp
    address: "127.0.0.1:0"
    tls: {cert: %q, key: %q}
  - {id: ws, type: websocket, address: "127.0.0.1:0", path: /mqtt}
  - {id: unix, type: unix, address: %q, mode: "0600"}
  - {id: http, type: http, address: "127.0.0.1:0", token: t0ken}
mqtt: {sys_interval: 0}
`, pki.ServerCert, pki.ServerKey, sock)
	tcpAddr, logs := runBroker(t, config)
	addr := map[string]string{"tcp": tcpAddr}
	for _, id := range []string{"tls", "ws", "unix", "http"} {
		select {
		case a := <-logs.addrs:
			addr[id] = a
		case <-time.After(waitTimeout):
			t.Fatalf("listener %s: no listening address logged; log:\n%s", id, logs)
		}
	}
	if addr["unix"] != sock {
		t.Fatalf("unix listener logged %q, want %q", addr["unix"], sock)
	}

	hc := &http.Client{Timeout: waitTimeout}
	resp, err := hc.Get("http://" + addr["http"] + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("/healthz: %s %q, want 200 ok", resp.Status, body)
	}
	for tok, want := range map[string]int{"t0ken": http.StatusOK, "wrong": http.StatusUnauthorized} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr["http"]+"/api/v1/stats", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET /api/v1/stats: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("/api/v1/stats with token %q: %s, want %d", tok, resp.Status, want)
		}
	}

	tc, err := tls.Dial("tcp", addr["tls"], &tls.Config{RootCAs: pki.CAPool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS handshake with the tls listener: %v", err)
	}
	if code := connackOver(t, tc); code != 0 {
		t.Errorf("CONNACK over TLS: %#x, want 0", code)
	}
	uc, err := net.DialTimeout("unix", sock, waitTimeout)
	if err != nil {
		t.Fatalf("dial the unix socket: %v", err)
	}
	if code := connackOver(t, uc); code != 0 {
		t.Errorf("CONNACK over the unix socket: %#x, want 0", code)
	}

	got := make(chan string, 1)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr["tcp"]).SetClientID("sub"))
	if tok := sub.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("tcp subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("ws/t", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ws://" + addr["ws"] + "/mqtt").SetClientID("ws-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("WebSocket publisher: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	if tok := pub.Publish("ws/t", 1, false, "over websocket"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("publish over ws: %v", tok.Error())
	}
	select {
	case p := <-got:
		if p != "over websocket" {
			t.Errorf("subscriber got %q", p)
		}
	case <-time.After(waitTimeout):
		t.Fatal("a message published over WebSocket did not reach the TCP subscriber")
	}
}
