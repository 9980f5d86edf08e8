package vanemqcmd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// proxyConnack dials addr from the local IP from, sends header and a
// CONNECT, and returns the CONNACK's reason code, or ok false when the
// broker closed the connection without one; local is the client's address.
func proxyConnack(t *testing.T, addr, from, header, id string) (local string, code byte, ok bool) {
	t.Helper()
	d := net.Dialer{Timeout: waitTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	defer conn.Close()
	local = conn.LocalAddr().String()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(append([]byte(header), connectPacket(id, "", "")...)); err != nil {
		return local, 0, false // refused before the write completed
	}
	first, body, err := readPacket(bufio.NewReader(conn))
	if err != nil || first != 0x20 || len(body) < 2 {
		return local, 0, false
	}
	return local, body[1], true
}

// TestRunProxyTrusted runs a proxy_protocol listener with a connection
// rate that trusts a proxy at 127.0.0.2 only (issue 15 §6). A client that
// reaches the port directly (from 127.0.0.1) can no longer choose its
// source address with a PROXY header of its own to get past
// connection_rate: it is refused, header or not, with a warning naming it.
// Behind the trusted proxy, the rate applies to the header's address, an
// IPv6 client's by its /64.
func TestRunProxyTrusted(t *testing.T) {
	addr, logs := runBroker(t, `allow_anonymous: true
listeners:
  - id: lb
    type: tcp
    address: "127.0.0.1:0"
    proxy_protocol: true
    proxy_protocol_trusted: ["127.0.0.2"]
    connection_rate: 0.001
mqtt: {sys_interval: 0}
`)
	for i := 1; i <= 3; i++ {
		h := fmt.Sprintf("PROXY TCP4 10.0.0.%d 127.0.0.1 4000%d 1883\r\n", i, i)
		local, code, ok := proxyConnack(t, addr, "127.0.0.1", h, fmt.Sprintf("direct%d", i))
		if ok {
			t.Errorf("connection %d from 127.0.0.1 claiming 10.0.0.%d: CONNACK %#x; an untrusted peer chose its source address", i, i, code)
		} else if !waitLog(logs, "PROXY protocol source not trusted\" listener=lb remote="+local+" ") {
			t.Errorf("no warning names the untrusted %s; log:\n%s", local, logs)
		}
	}
	if local, code, ok := proxyConnack(t, addr, "127.0.0.1", "", "direct-no-header"); ok {
		t.Errorf("a direct client without a header got CONNACK %#x", code)
	} else if !waitLog(logs, "remote="+local+" cause=") {
		t.Errorf("no warning names the untrusted %s; log:\n%s", local, logs)
	}

	for i, tc := range []struct {
		src  string
		ok   bool
		logs string // the bucket named in the rate's warning
	}{
		{"TCP4 10.0.0.1 127.0.0.1", true, ""},
		{"TCP4 10.0.0.1 127.0.0.1", false, "source=10.0.0.1/32"}, // the same client again, over its rate
		{"TCP4 10.0.0.2 127.0.0.1", true, ""},
		{"TCP6 2001:db8::1 ::1", true, ""},
		{"TCP6 2001:db8::2 ::1", false, "source=2001:db8::/64"}, // another address of the same /64
		{"TCP6 2001:db8:0:1::1 ::1", true, ""},
	} {
		h := fmt.Sprintf("PROXY %s %d 1883\r\n", tc.src, 41000+i)
		_, code, ok := proxyConnack(t, addr, "127.0.0.2", h, fmt.Sprintf("behind%d", i))
		switch {
		case tc.ok && (!ok || code != 0):
			t.Errorf("%s behind the trusted proxy: CONNACK %#x, %v; want 0; log:\n%s", tc.src, code, ok, logs)
		case !tc.ok && ok:
			t.Errorf("%s behind the trusted proxy: CONNACK %#x; want it refused by connection_rate", tc.src, code)
		case !tc.ok && !waitLog(logs, "connection rate per source IP exceeded"):
			t.Errorf("%s: no rate warning; log:\n%s", tc.src, logs)
		case !tc.ok && !strings.Contains(logs.String(), tc.logs):
			t.Errorf("%s: the rate warning does not name %s; log:\n%s", tc.src, tc.logs, logs)
		}
	}
}
