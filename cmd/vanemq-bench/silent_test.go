package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// TestSilentHealthyRefused checks that a healthy client the broker does not
// serve is reported, attempt by attempt with the first error, and does not
// fail the run: it is what the scenario measures. The fake broker never
// answers the silent connections' CONNECT, which declares 1 MiB, and
// refuses every complete one.
func TestSilentHealthyRefused(t *testing.T) {
	addr := fakeBroker(t, func(c *fakeConn, _ *packets.Packet) {
		c.send(packets.Packet{Type: packets.Connack, ReasonCode: packets.V3NotAuthorized})
	})
	args := []string{"-scenario", "silent", "-conns", "3", "-waves", "1", "-hold", "100ms", "-addr", addr}
	res := runBenchJSON(t, args...)
	if res.HealthyAttempts != healthyAttempts || res.HealthyFailed != healthyAttempts || res.HealthyP50us != 0 {
		t.Errorf("healthy: %d attempts, %d failed, p50 %v µs; want %d, all failed, 0",
			res.HealthyAttempts, res.HealthyFailed, res.HealthyP50us, healthyAttempts)
	}
	if len(res.WaveResults) != 1 || !strings.Contains(res.WaveResults[0].HealthyError, "CONNACK refused the connection: not authorized") {
		t.Errorf("wave results %+v: want one with the refusal as its healthy_error", res.WaveResults)
	}
	if res.ClosedByBroker != 0 || res.BrokerRSSBytes != 0 || res.BytesPerConn != 0 {
		t.Errorf("closed %d, rss %d, bytes/conn %d: want 0 (nothing closed, no -broker-pid)", res.ClosedByBroker, res.BrokerRSSBytes, res.BytesPerConn)
	}

	var stdout, stderr bytes.Buffer
	if code := runCLI(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit status %d, stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{
		"vanemq-bench silent: tcp, MQTT 3.1.1, 1 wave × 3 connections, each sending 10faff3f (4 bytes) and then nothing",
		"3 opened in ", "0 closed by the broker before the end of the hold",
		"healthy client served 0 of 5 times; FAILED 5, first: healthy client 0 (client vb",
		"memory      not measured (no -broker-pid)",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestSilentFailures checks that a broker that cannot be reached, or that
// refuses a silent connection's CONNECT, fails the run, naming the
// connection.
func TestSilentFailures(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	refusing := fakeBroker(t, func(c *fakeConn, _ *packets.Packet) {
		c.send(packets.Packet{Type: packets.Connack, ReasonCode: packets.V3ServerUnavailable})
	})
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"nothing listens", []string{"-addr", "127.0.0.1:" + strconv.Itoa(port)}, "silent connection 0: connect to 127.0.0.1:"},
		{"connect refused", []string{"-addr", refusing, "-silent-connect"}, "CONNACK refused the connection: server unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			start := time.Now()
			args := append([]string{"-scenario", "silent", "-conns", "1", "-waves", "2", "-hold", "1m"}, tc.args...)
			if code := runCLI(t.Context(), args, &stdout, &stderr); code != 1 {
				t.Fatalf("exit status %d, want 1; stderr:\n%s", code, stderr.String())
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("the run took %v to fail", d)
			}
			if !strings.Contains(stderr.String(), "silent over tcp to") || !strings.Contains(stderr.String(), "wave 1: ") ||
				!strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not mention the wave and %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
