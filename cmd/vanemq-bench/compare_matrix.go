package main

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// scenarioSpec is one row of the comparison matrix: a load-generator
// scenario with its parameters.
type scenarioSpec struct {
	ID          string // unique, such as "fanin-q0-64"
	Kind        string // the tool's -scenario: fanin, fanout, pairs, latency, conns or silent
	Title       string // for people, such as "fan-in 8→1, QoS 0, 64 B"
	MQTT        int    // 4 for 3.1.1, 5 for 5.0
	QoS         int
	Size        int // payload bytes
	Publishers  int
	Subscribers int
	Pairs       int
	Conns       int
	Rate        int // messages per second per publisher; 0 for as fast as possible
	// SilentConnect, Send and Hold are the silent scenario's
	// -silent-connect, -send and -hold; an empty Send and a zero Hold leave
	// the tool's defaults.
	SilentConnect bool
	Send          string
	Hold          time.Duration
	// Rounds is the least number of rounds the row runs, whatever -rounds
	// (but -quick): for a row whose runs spread too widely for 3 to show.
	Rounds int
	// Filter, Topics and TopicPattern are fan-out's -filter, -topics and
	// -topic-pattern; empty and zero leave the tool's defaults.
	Filter       string
	Topics       int
	TopicPattern string
	// Username and Password are every client's -username and -password;
	// empty for anonymous clients.
	Username, Password string
}

// pairsQoS1Rounds is how many rounds the 100 QoS 1 pairs run: their runs
// were bimodal (issue 16: one in three or four at a third of the others'
// deliveries per CPU-second), which 3 rounds neither show nor settle.
const pairsQoS1Rounds = 9

// silentHold is how long the silent rows hold each wave: long enough for the
// healthy client's 5 attempts and for the broker to have read what the
// connections sent, short enough that the rows add minutes, not more.
const silentHold = time.Second

// scenarioMatrix is the comparison matrix: the targets, all over
// MQTT 3.1.1 so that every peer takes part, plus one MQTT 5 row, and the
// silent connections of issue 15 (before and after CONNECT).
func scenarioMatrix() []scenarioSpec {
	fanin := func(qos, size, mqtt int) scenarioSpec {
		id := fmt.Sprintf("fanin-q%d-%d", qos, size)
		title := fmt.Sprintf("fan-in 8→1, QoS %d, %d B", qos, size)
		if mqtt == 5 {
			id += "-v5"
			title += ", MQTT 5"
		}
		return scenarioSpec{ID: id, Kind: "fanin", Title: title, MQTT: mqtt, QoS: qos, Size: size, Publishers: 8, Subscribers: 1}
	}
	pairs := func(qos int) scenarioSpec {
		s := scenarioSpec{ID: fmt.Sprintf("pairs-q%d-64", qos), Kind: "pairs",
			Title: fmt.Sprintf("100 pairs 1→1, QoS %d, 64 B", qos), MQTT: 4, QoS: qos, Size: 64, Pairs: 100}
		if qos == 1 {
			s.Rounds = pairsQoS1Rounds
		}
		return s
	}
	latency := func(qos int) scenarioSpec {
		return scenarioSpec{ID: fmt.Sprintf("latency-q%d-64", qos), Kind: "latency",
			Title: fmt.Sprintf("latency 1→1 at 10000 msg/s, QoS %d, 64 B", qos),
			MQTT:  4, QoS: qos, Size: 64, Publishers: 1, Subscribers: 1, Rate: 10000}
	}
	return []scenarioSpec{
		fanin(0, 64, 4),
		fanin(0, 1024, 4),
		fanin(1, 64, 4),
		fanin(1, 1024, 4),
		fanin(1, 64, 5),
		{ID: "fanout-q0-64", Kind: "fanout", Title: "fan-out 1→50, QoS 0, 64 B", MQTT: 4, QoS: 0, Size: 64, Publishers: 1, Subscribers: 50},
		pairs(0),
		pairs(1),
		latency(0),
		latency(1),
		{ID: "conns-10000", Kind: "conns", Title: "10000 idle connections", MQTT: 4, Conns: 10000},
		{ID: "silent-2000", Kind: "silent", MQTT: 4, Conns: 2000, Hold: silentHold,
			Title: "3 waves × 2000 connections sending a CONNECT header declaring 1 MiB, then nothing"},
		{ID: "silent-publish-2000", Kind: "silent", MQTT: 4, Conns: 2000, SilentConnect: true, Send: "30faff3f", Hold: silentHold,
			Title: "3 waves × 2000 connections: CONNECT, then a PUBLISH header declaring 1 MiB, then nothing"},
	}
}

// selectScenarios keeps the scenarios whose ID matches re; a nil re keeps all.
func selectScenarios(all []scenarioSpec, re *regexp.Regexp) []scenarioSpec {
	if re == nil {
		return all
	}
	var out []scenarioSpec
	for _, s := range all {
		if re.MatchString(s.ID) {
			out = append(out, s)
		}
	}
	return out
}

// throughputKind reports whether the scenario's target is deliveries per
// broker CPU-second.
func (s scenarioSpec) throughputKind() bool {
	return s.Kind == "fanin" || s.Kind == "fanout" || s.Kind == "pairs"
}

// toolArgs are the load generator's flags for this scenario, without -addr,
// -broker-pid, -label and -json. Zero counts are left to the tool's defaults.
func (s scenarioSpec) toolArgs(duration, warmup time.Duration) []string {
	args := []string{
		"-scenario", s.Kind,
		"-transport", "tcp",
		"-mqtt", strconv.Itoa(s.MQTT),
		"-qos", strconv.Itoa(s.QoS),
	}
	add := func(name string, v int) {
		if v > 0 {
			args = append(args, name, strconv.Itoa(v))
		}
	}
	add("-size", s.Size)
	add("-publishers", s.Publishers)
	add("-subscribers", s.Subscribers)
	add("-pairs", s.Pairs)
	add("-conns", s.Conns)
	add("-rate", s.Rate)
	add("-topics", s.Topics)
	str := func(name, v string) {
		if v != "" {
			args = append(args, name, v)
		}
	}
	str("-topic-pattern", s.TopicPattern)
	str("-filter", s.Filter)
	str("-username", s.Username)
	str("-password", s.Password)
	if s.SilentConnect {
		args = append(args, "-silent-connect")
	}
	if s.Send != "" {
		args = append(args, "-send", s.Send)
	}
	if s.Hold > 0 {
		args = append(args, "-hold", s.Hold.String())
	}
	return append(args, "-duration", duration.String(), "-warmup", warmup.String())
}
