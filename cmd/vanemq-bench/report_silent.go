package main

import (
	"fmt"
	"strings"
	"time"
)

// describeSilent is the silent scenario's part of the report's first line:
// what each connection does.
func describeSilent(r *runResult) string {
	s := fmt.Sprintf("%s × %s connections, each ", nounCount(r.Waves, "wave"), thousands(int64(r.Conns)))
	switch {
	case r.SilentConnect && r.Send == "":
		return s + "completing CONNECT and then sending nothing"
	case r.SilentConnect:
		return s + fmt.Sprintf("completing CONNECT, then sending %s (%s) and nothing more", r.Send, nounCount(len(r.Send)/2, "byte"))
	case r.Send == "":
		return s + "sending nothing"
	}
	return s + fmt.Sprintf("sending %s (%s) and then nothing", r.Send, nounCount(len(r.Send)/2, "byte"))
}

// writeSilentText writes the silent scenario's lines: each wave's, the
// worst, and the healthy client's over the whole run.
func writeSilentText(line func(name, format string, args ...any), r *runResult) {
	measured := len(r.brokerPIDs) > 0
	for _, w := range r.WaveResults {
		line(fmt.Sprintf("wave %d", w.Wave), "%s opened in %.3f s, held %s; %s closed by the broker before the end of the hold",
			thousands(int64(w.Conns)), w.OpenS, r.hold, thousands(int64(w.ClosedByBroker)))
		if measured {
			line("", "VmRSS %s before, peak %s: %s bytes per connection (%s over the first wave's start)",
				mib(w.RSSBeforeBytes), mib(w.RSSPeakBytes), thousands(w.BytesPerConn), thousands(w.BytesPerConnFromStart))
		}
		line("", "healthy client %s", describeHealthy(w.HealthyAttempts, w.HealthyFailed, w.HealthyP50us, w.HealthyMaxUS, w.HealthyError))
	}
	if measured {
		perWave, fromStart := worstWaves(r.WaveResults)
		line("worst", "%s bytes per connection (wave %d), %s over the first wave's start (wave %d); VmRSS peak %s",
			thousands(r.BytesPerConn), perWave, thousands(r.BytesPerConnFromStart), fromStart, mib(r.BrokerRSSBytes))
	} else {
		line("memory", "not measured (no -broker-pid)")
	}
	line("healthy", "client %s", describeHealthy(r.HealthyAttempts, r.HealthyFailed, r.HealthyP50us, r.HealthyMaxUS, r.healthyErr))
	line("closed", "%s connection%s closed by the broker over %s", thousands(int64(r.ClosedByBroker)), pluralS(r.ClosedByBroker), nounCount(r.Waves, "wave"))
}

// describeHealthy summarises healthy attempts: how many were served and
// their connect latency, and the first failure's error.
func describeHealthy(attempts, failed int, p50us, maxUS float64, firstErr string) string {
	s := fmt.Sprintf("served %d of %d times", attempts-failed, attempts)
	if attempts > failed {
		s += fmt.Sprintf(": connect p50 %s, max %s", fmtUS(p50us), fmtUS(maxUS))
	}
	if failed > 0 {
		s += fmt.Sprintf("; FAILED %d, first: %s", failed, strings.TrimSpace(firstErr))
	}
	return s
}

// worstWaves returns the waves with the highest bytes per connection and
// the highest bytes per connection over the first wave's start (the first
// such wave).
func worstWaves(waves []waveResult) (perWave, fromStart int) {
	var bw, bs int64 = -1, -1
	for _, w := range waves {
		if w.BytesPerConn > bw {
			bw, perWave = w.BytesPerConn, w.Wave
		}
		if w.BytesPerConnFromStart > bs {
			bs, fromStart = w.BytesPerConnFromStart, w.Wave
		}
	}
	return perWave, fromStart
}

// fmtUS formats microseconds as a duration: 412µs, 1.204ms, 5.3s.
func fmtUS(us float64) string {
	return time.Duration(us * float64(time.Microsecond)).Round(time.Microsecond).String()
}
