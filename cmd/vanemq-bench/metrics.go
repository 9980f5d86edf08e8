package main

import (
	"math"
	"time"
)

// runResult is the outcome of one run. The JSON fields are what -json
// prints (and what `vanemq-bench compare` reads); the others only feed the
// text report. Figures a scenario does not produce are 0 (wave_results is
// left out), and so are the broker's without -broker-pid.
type runResult struct {
	Scenario    string  `json:"scenario"`
	Transport   string  `json:"transport"`
	MQTT        int     `json:"mqtt"`
	QoS         int     `json:"qos"`
	Size        int     `json:"size"`
	Publishers  int     `json:"publishers"`
	Subscribers int     `json:"subscribers"`
	Pairs       int     `json:"pairs"`
	Conns       int     `json:"conns"`
	DurationS   float64 `json:"duration_s"` // the measurement window; conns: the connecting time; silent: the whole run
	// Topics is how many distinct topics the publishers publish on, and
	// Filter what fan-out's subscribers subscribe to (other scenarios: "").
	Topics int    `json:"topics"`
	Filter string `json:"filter"`

	Sent           int64   `json:"sent"`             // messages sent inside the window
	Expected       int64   `json:"expected"`         // sent × deliveries per message
	Received       int64   `json:"received"`         // deliveries of those messages, drain included
	LossPct        float64 `json:"loss_pct"`         // 1 - received/expected, in percent
	DeliveriesPerS float64 `json:"deliveries_per_s"` // deliveries that arrived inside the window, per second

	// CPU time used inside the window (conns: while connecting).
	BrokerCPUS              float64 `json:"broker_cpu_s"`
	DeliveriesPerBrokerCPUS float64 `json:"deliveries_per_broker_cpu_s"` // arrived inside the window / broker_cpu_s
	BenchCPUS               float64 `json:"bench_cpu_s"`
	BenchCPUShare           float64 `json:"bench_cpu_share"` // bench / (bench + broker)
	// BrokerCPUSByPID is broker_cpu_s process by process, in -broker-pid's
	// order, when it names more than one.
	BrokerCPUSByPID []float64 `json:"broker_cpu_s_by_pid,omitempty"`

	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	P999us float64 `json:"p999_us"`

	ConnectPerS    float64 `json:"connect_per_s"`
	BrokerRSSBytes int64   `json:"broker_rss_bytes"` // silent: the highest of the waves' peaks
	BytesPerConn   int64   `json:"bytes_per_conn"`   // silent: the worst wave's

	// The silent scenario: its settings, the worst and the totals of its
	// waves, and each wave's figures.
	Waves                 int          `json:"waves"`
	Send                  string       `json:"send"` // hex
	SilentConnect         bool         `json:"silent_connect"`
	BytesPerConnFromStart int64        `json:"bytes_per_conn_from_start"` // the worst wave's
	ClosedByBroker        int          `json:"closed_by_broker"`          // over all waves
	HealthyAttempts       int          `json:"healthy_attempts"`
	HealthyFailed         int          `json:"healthy_failed"`
	HealthyP50us          float64      `json:"healthy_connect_p50_us"` // over every served attempt
	HealthyMaxUS          float64      `json:"healthy_connect_max_us"`
	WaveResults           []waveResult `json:"wave_results,omitempty"`

	Label string `json:"label"`

	brokerPIDs []int
	warmup     time.Duration
	drained    time.Duration // time spent draining after the window
	hold       time.Duration // conns: time the connections stayed open
	fan        int64         // deliveries per message
	arrived    int64         // deliveries that arrived inside the window
	latN       uint64        // latency samples
	meanUS     float64
	maxUS      float64
	rate       int // total msgs/s; 0: as fast as possible
	inflight   int
	brokerCPU  time.Duration
	benchCPU   time.Duration
	rssBefore  int64  // conns: broker VmRSS before connecting; silent: before the first wave
	healthyErr string // silent: the first failed healthy attempt's error
}

// newRunResult returns a result with the run's settings filled in.
func newRunResult(env *benchEnv) runResult {
	cfg := env.cfg
	return runResult{
		Scenario:   cfg.Scenario,
		Transport:  cfg.Transport,
		MQTT:       int(cfg.MQTT),
		QoS:        int(cfg.QoS),
		Size:       cfg.Size,
		Label:      cfg.Label,
		brokerPIDs: cfg.BrokerPIDs,
		warmup:     cfg.Warmup,
		rate:       cfg.rate(),
		inflight:   cfg.Inflight,
	}
}

// setCPU records the CPU time used between two samples.
func (r *runResult) setCPU(before, after cpuSample) {
	r.brokerCPU = after.broker - before.broker
	r.benchCPU = after.self - before.self
	r.BrokerCPUS = r.brokerCPU.Seconds()
	r.BenchCPUS = r.benchCPU.Seconds()
	r.BrokerCPUSByPID = nil
	if len(after.byPID) > 1 && len(before.byPID) == len(after.byPID) {
		for i := range after.byPID {
			r.BrokerCPUSByPID = append(r.BrokerCPUSByPID, roundTo((after.byPID[i]-before.byPID[i]).Seconds(), 3))
		}
	}
}

// setLatency records the latency percentiles of h, in microseconds.
func (r *runResult) setLatency(h *latencyHist) {
	us := func(ns int64) float64 { return roundTo(float64(ns)/1e3, 1) }
	r.P50us = us(h.quantile(0.50))
	r.P99us = us(h.quantile(0.99))
	r.P999us = us(h.quantile(0.999))
	r.latN = h.n
	r.meanUS = roundTo(h.mean()/1e3, 1)
	if h.n > 0 {
		r.maxUS = us(h.max)
	}
}

// finish derives the rates and ratios from the counts.
func (r *runResult) finish() {
	if r.Expected > 0 {
		r.LossPct = roundTo(max(0, 100*(1-float64(r.Received)/float64(r.Expected))), 3)
	}
	if r.DurationS > 0 {
		r.DeliveriesPerS = roundTo(float64(r.arrived)/r.DurationS, 1)
	}
	if r.BrokerCPUS > 0 {
		r.DeliveriesPerBrokerCPUS = roundTo(float64(r.arrived)/r.BrokerCPUS, 1)
	}
	if len(r.brokerPIDs) > 0 && r.BenchCPUS+r.BrokerCPUS > 0 {
		r.BenchCPUShare = roundTo(r.BenchCPUS/(r.BenchCPUS+r.BrokerCPUS), 4)
	}
	r.BrokerCPUS = roundTo(r.BrokerCPUS, 3)
	r.BenchCPUS = roundTo(r.BenchCPUS, 3)
}

// roundTo rounds x to n decimals.
func roundTo(x float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(x*p) / p
}
