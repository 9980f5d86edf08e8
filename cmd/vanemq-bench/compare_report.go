package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The targets.
const (
	// targetPerCPU is the least vanemq ÷ better peer for deliveries per
	// broker CPU-second in each fan-in, fan-out and pairs row.
	targetPerCPU = 2.0
	// targetConnect is the least vanemq ÷ better peer for the connect rate.
	targetConnect = 1.5
	// targetBytesPerConn is the most broker memory per idle connection.
	targetBytesPerConn = 6144
	// lossTolerancePct is how many percentage points of loss above the
	// better peer's still count as "no worse": the two-decimal rounding of
	// the report, so that float noise does not decide a target.
	lossTolerancePct = 0.005
)

// Target outcomes.
const (
	statusPass   = "PASS"
	statusFail   = "FAIL"
	statusNoData = "NO DATA"
)

// cellKey identifies the runs of one scenario against one broker.
type cellKey struct {
	Scenario string // scenarioSpec.ID
	Broker   string
}

// cellStats are the medians over the successful runs of one cell.
type cellStats struct {
	OK, Failed     int // runs that succeeded and failed
	DeliveriesPerS float64
	PerCPU         float64 // deliveries per broker CPU-second
	LossPct        float64
	P50, P99, P999 float64 // µs
	ConnectPerS    float64
	BytesPerConn   float64
	RSSBytes       float64
	BenchCPUShare  float64

	// The silent scenario's: medians but for the healthy client's attempts
	// and failures, summed over the runs, and its connect latency's max,
	// the highest of the runs'.
	BytesPerConnFromStart float64
	ClosedByBroker        float64
	HealthyAttempts       int
	HealthyFailed         int
	HealthyP50            float64 // µs
	HealthyMax            float64 // µs

	// PerCPUMin and PerCPUMax are the lowest and highest of the runs'
	// deliveries per broker CPU-second: the spread around the median.
	PerCPUMin, PerCPUMax float64
}

// report is everything the markdown and the tables show.
type report struct {
	Env       envInfo
	Rounds    int
	Duration  time.Duration
	Warmup    time.Duration
	Quick     bool
	Command   string // the compare command line, for people to re-run
	Scenarios []scenarioSpec
	Brokers   []string
	Cells     map[cellKey]cellStats
	Failures  []runRecord
	Ratios    []ratioRow
	Targets   []targetResult

	// MoreRounds names the scenarios that ran more rounds, as moreRounds
	// has it ("" for none).
	MoreRounds string
}

// buildReport aggregates the run records into a report.
func buildReport(env envInfo, o *compareOptions, scenarios []scenarioSpec, brokers []string, records []runRecord) *report {
	rep := &report{
		Env:       env,
		Rounds:    o.rounds,
		Duration:  o.duration,
		Warmup:    o.warmup,
		Quick:     o.quick,
		Command:   commandLine(o.args),
		Scenarios: scenarios,
		Brokers:   brokers,
		Cells:     summarize(records),
	}
	rep.MoreRounds = moreRounds(scenarios, o)
	for _, r := range records {
		if r.Err != nil {
			rep.Failures = append(rep.Failures, r)
		}
	}
	rep.Ratios = computeRatios(scenarios, rep.Cells)
	rep.Targets = evaluateTargets(scenarios, rep.Cells)
	return rep
}

// commandLine is the compare command line for args, quoted for a shell.
func commandLine(args []string) string {
	parts := []string{"bin/vanemq-bench", "compare"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// summarize computes the per-cell medians of the successful runs.
func summarize(records []runRecord) map[cellKey]cellStats {
	groups := map[cellKey][]benchResult{}
	failed := map[cellKey]int{}
	for _, r := range records {
		k := cellKey{r.Scenario, r.Broker}
		if r.Err != nil {
			failed[k]++
			if _, ok := groups[k]; !ok {
				groups[k] = nil // a cell with failures only
			}
			continue
		}
		groups[k] = append(groups[k], r.Result)
	}
	cells := make(map[cellKey]cellStats, len(groups))
	for k, rs := range groups {
		med := func(get func(benchResult) float64) float64 {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = get(r)
			}
			return median(xs)
		}
		var attempts, healthyFailed int
		var healthyMax float64
		perCPUMin, perCPUMax := math.NaN(), math.NaN()
		for i, r := range rs {
			if v := r.DeliveriesPerBrokerCPUS; i == 0 {
				perCPUMin, perCPUMax = v, v
			} else {
				perCPUMin, perCPUMax = min(perCPUMin, v), max(perCPUMax, v)
			}
			attempts += r.HealthyAttempts
			healthyFailed += r.HealthyFailed
			healthyMax = max(healthyMax, r.HealthyMaxUS)
		}
		cells[k] = cellStats{
			OK:             len(rs),
			Failed:         failed[k],
			DeliveriesPerS: med(func(r benchResult) float64 { return r.DeliveriesPerS }),
			PerCPU:         med(func(r benchResult) float64 { return r.DeliveriesPerBrokerCPUS }),
			PerCPUMin:      perCPUMin,
			PerCPUMax:      perCPUMax,
			LossPct:        med(func(r benchResult) float64 { return r.LossPct }),
			P50:            med(func(r benchResult) float64 { return r.P50us }),
			P99:            med(func(r benchResult) float64 { return r.P99us }),
			P999:           med(func(r benchResult) float64 { return r.P999us }),
			ConnectPerS:    med(func(r benchResult) float64 { return r.ConnectPerS }),
			BytesPerConn:   med(func(r benchResult) float64 { return r.BytesPerConn }),
			RSSBytes:       med(func(r benchResult) float64 { return r.BrokerRSSBytes }),
			BenchCPUShare:  med(func(r benchResult) float64 { return r.BenchCPUShare }),

			BytesPerConnFromStart: med(func(r benchResult) float64 { return r.BytesPerConnFromStart }),
			ClosedByBroker:        med(func(r benchResult) float64 { return r.ClosedByBroker }),
			HealthyAttempts:       attempts,
			HealthyFailed:         healthyFailed,
			HealthyP50:            med(func(r benchResult) float64 { return r.HealthyP50us }),
			HealthyMax:            healthyMax,
		}
	}
	return cells
}

// median is the middle value of xs, the mean of the two middle ones for an
// even count, and NaN for none. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratio is a ÷ b for finite a, b ≥ 0: +Inf when only b is 0; ok is false
// when both are 0 or either is negative, NaN or infinite.
func ratio(a, b float64) (r float64, ok bool) {
	if !(a >= 0) || !(b >= 0) || math.IsInf(a, 0) || math.IsInf(b, 0) || (a == 0 && b == 0) {
		return 0, false
	}
	if b == 0 {
		return math.Inf(1), true
	}
	return a / b, true
}

// metric is a per-cell quantity compared between brokers.
type metric struct {
	Name        string
	LowerBetter bool
	// ZeroIsData says that 0 is a measurement (a broker that delivered
	// nothing) rather than the absence of one (no latency samples).
	ZeroIsData bool
	Get        func(cellStats) float64
}

// perCPUMetric is deliveries per broker CPU-second, higher is better.
func perCPUMetric() metric {
	return metric{Name: "deliveries per broker CPU-s", ZeroIsData: true, Get: func(c cellStats) float64 { return c.PerCPU }}
}

// connectMetric is the connect rate, higher is better.
func connectMetric() metric {
	return metric{Name: "connects/s", ZeroIsData: true, Get: func(c cellStats) float64 { return c.ConnectPerS }}
}

// p99Metric is the 99th percentile latency, lower is better.
func p99Metric() metric {
	return metric{Name: "p99 latency µs (lower is better)", LowerBetter: true, Get: func(c cellStats) float64 { return c.P99 }}
}

// value is the metric of one cell; ok is false when the cell has no
// successful run or the value is negative, NaN, infinite, or 0 where 0
// means "not measured".
func (m metric) value(cells map[cellKey]cellStats, scenario, broker string) (float64, bool) {
	c, found := cells[cellKey{scenario, broker}]
	if !found || c.OK == 0 {
		return 0, false
	}
	v := m.Get(c)
	if !(v >= 0) || math.IsInf(v, 0) || (v == 0 && !m.ZeroIsData) {
		return 0, false
	}
	return v, true
}

// betterPeer is the peer with the better value of m in scenario, among
// those with data.
func (m metric) betterPeer(cells map[cellKey]cellStats, scenario string) (peer string, v float64, ok bool) {
	for _, p := range []string{brokerMochi, brokerMosquitto} {
		pv, pok := m.value(cells, scenario, p)
		if !pok {
			continue
		}
		if !ok || (m.LowerBetter && pv < v) || (!m.LowerBetter && pv > v) {
			peer, v, ok = p, pv, true
		}
	}
	return peer, v, ok
}

// ratioRow is one row of the vanemq ÷ peer table. A zero ratio is n/a.
type ratioRow struct {
	Scenario    scenarioSpec
	Metric      metric
	Values      map[string]float64 // by broker; missing is n/a
	VsMochi     float64
	VsMosquitto float64
	VsBetter    float64
	BetterPeer  string
}

// computeRatios compares vanemq with the peers: deliveries per CPU-second in
// the throughput rows, connect rate in the conns rows, p99 in the latency
// rows, memory per connection in the silent rows.
func computeRatios(scenarios []scenarioSpec, cells map[cellKey]cellStats) []ratioRow {
	var rows []ratioRow
	for _, s := range scenarios {
		var m metric
		switch {
		case s.throughputKind():
			m = perCPUMetric()
		case s.Kind == "conns":
			m = connectMetric()
		case s.Kind == "latency":
			m = p99Metric()
		case s.Kind == "silent":
			m = silentMemMetric()
		default:
			continue
		}
		row := ratioRow{Scenario: s, Metric: m, Values: map[string]float64{}}
		for _, b := range brokerNames() {
			if v, ok := m.value(cells, s.ID, b); ok {
				row.Values[b] = v
			}
		}
		v, vok := row.Values[brokerVanemq]
		if vok {
			if pv, ok := row.Values[brokerMochi]; ok {
				row.VsMochi, _ = ratio(v, pv)
			}
			if pv, ok := row.Values[brokerMosquitto]; ok {
				row.VsMosquitto, _ = ratio(v, pv)
			}
			if peer, pv, ok := m.betterPeer(cells, s.ID); ok {
				if r, ok := ratio(v, pv); ok {
					row.VsBetter, row.BetterPeer = r, peer
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// targetResult is the evaluation of one target in one scenario.
type targetResult struct {
	Target   string
	Scenario string
	Status   string // statusPass, statusFail or statusNoData
	Measured string
	Margin   string
}

// evaluateTargets checks the targets:
//   - deliveries per broker CPU-second ≥ 2.0× the better peer in each fan-in,
//     fan-out and pairs row, with loss no worse than that peer's;
//   - latency p99 ≤ Mosquitto's (QoS 0 and 1);
//   - bytes per connection ≤ 6144 at 10k connections;
//   - connect rate ≥ 1.5× the better peer;
//   - ≤ 8192 bytes per silent connection, with a healthy client served.
func evaluateTargets(scenarios []scenarioSpec, cells map[cellKey]cellStats) []targetResult {
	var out []targetResult
	for _, s := range scenarios {
		switch {
		case s.throughputKind():
			out = append(out, perCPUTarget(s, cells))
		case s.Kind == "latency":
			out = append(out, latencyTarget(s, cells))
		case s.Kind == "conns":
			out = append(out, bytesPerConnTarget(s, cells), connectTarget(s, cells))
		case s.Kind == "silent":
			out = append(out, silentTarget(s, cells))
		}
	}
	return out
}

// perCPUTarget: deliveries per broker CPU-second ≥ 2.0× the better peer,
// loss no worse than that peer's.
func perCPUTarget(s scenarioSpec, cells map[cellKey]cellStats) targetResult {
	t := targetResult{
		Target:   fmt.Sprintf("deliveries/CPU-s ≥ %.1f× better peer, loss ≤ its loss", targetPerCPU),
		Scenario: s.ID,
		Status:   statusNoData,
	}
	m := perCPUMetric()
	v, vok := m.value(cells, s.ID, brokerVanemq)
	peer, pv, pok := m.betterPeer(cells, s.ID)
	r, rok := ratio(v, pv)
	if !vok || !pok || !rok {
		t.Measured = noDataReason(vok, pok)
		if vok && pok {
			t.Measured = "no broker delivered anything"
		}
		return t
	}
	vLoss := cells[cellKey{s.ID, brokerVanemq}].LossPct
	pLoss := cells[cellKey{s.ID, peer}].LossPct
	lossOK := vLoss <= pLoss+lossTolerancePct
	t.Status = passFail(r >= targetPerCPU && lossOK)
	t.Measured = fmt.Sprintf("%s %s (%s vs %s); loss %s vs %s",
		fmtRatio(r), peer, fmtNum(v), fmtNum(pv), fmtPct(vLoss), fmtPct(pLoss))
	t.Margin = ratioMargin(r, targetPerCPU)
	if !lossOK {
		t.Margin += fmt.Sprintf("; loss %+.2f pp", vLoss-pLoss)
	}
	return t
}

// latencyTarget: p99 ≤ Mosquitto's.
func latencyTarget(s scenarioSpec, cells map[cellKey]cellStats) targetResult {
	t := targetResult{
		Target:   "latency p99 ≤ mosquitto's",
		Scenario: s.ID,
		Status:   statusNoData,
	}
	m := p99Metric()
	v, vok := m.value(cells, s.ID, brokerVanemq)
	mv, mok := m.value(cells, s.ID, brokerMosquitto)
	if !vok || !mok {
		t.Measured = noDataReason(vok, mok)
		return t
	}
	t.Status = passFail(v <= mv)
	t.Measured = fmt.Sprintf("%s µs vs %s µs (%s)", fmtNum(v), fmtNum(mv), fmtRatio(v/mv))
	t.Margin = underOver(mv-v, "µs")
	return t
}

// bytesPerConnTarget: broker memory per idle connection ≤ 6144 bytes.
func bytesPerConnTarget(s scenarioSpec, cells map[cellKey]cellStats) targetResult {
	t := targetResult{
		Target:   fmt.Sprintf("bytes/conn ≤ %d", targetBytesPerConn),
		Scenario: s.ID,
		Status:   statusNoData,
	}
	c, ok := cells[cellKey{s.ID, brokerVanemq}]
	if !ok || c.OK == 0 || !(c.BytesPerConn > 0) {
		t.Measured = "no vanemq result"
		return t
	}
	t.Status = passFail(c.BytesPerConn <= targetBytesPerConn)
	t.Measured = fmtNum(c.BytesPerConn) + " B"
	t.Margin = underOver(targetBytesPerConn-c.BytesPerConn, "B")
	return t
}

// connectTarget: connect rate ≥ 1.5× the better peer.
func connectTarget(s scenarioSpec, cells map[cellKey]cellStats) targetResult {
	t := targetResult{
		Target:   fmt.Sprintf("connect rate ≥ %.1f× better peer", targetConnect),
		Scenario: s.ID,
		Status:   statusNoData,
	}
	m := connectMetric()
	v, vok := m.value(cells, s.ID, brokerVanemq)
	peer, pv, pok := m.betterPeer(cells, s.ID)
	r, rok := ratio(v, pv)
	if !vok || !pok || !rok {
		t.Measured = noDataReason(vok, pok)
		return t
	}
	t.Status = passFail(r >= targetConnect)
	t.Measured = fmt.Sprintf("%s %s (%s/s vs %s/s)", fmtRatio(r), peer, fmtNum(v), fmtNum(pv))
	t.Margin = ratioMargin(r, targetConnect)
	return t
}

// ratioMargin describes how far ratio r is above (+) or below (-) the
// required ratio.
func ratioMargin(r, required float64) string {
	if math.IsInf(r, 1) {
		return fmt.Sprintf("+∞ vs %.1f×", required)
	}
	return fmt.Sprintf("%+.2f× vs %.1f×", r-required, required)
}

// noDataReason says which side of a comparison lacks results.
func noDataReason(vanemqOK, peerOK bool) string {
	switch {
	case !vanemqOK && !peerOK:
		return "no vanemq or peer result"
	case !vanemqOK:
		return "no vanemq result"
	default:
		return "no peer result"
	}
}

// passFail maps a condition to PASS or FAIL.
func passFail(ok bool) string {
	if ok {
		return statusPass
	}
	return statusFail
}

// underOver describes a margin d = limit − measured: "N unit under" when
// within the limit, "N unit over" otherwise.
func underOver(d float64, unit string) string {
	if d >= 0 {
		return fmt.Sprintf("%s %s under", fmtNum(d), unit)
	}
	return fmt.Sprintf("%s %s over", fmtNum(-d), unit)
}

// fmtNum formats a measurement: integers with thousands separators from
// 100 up, one decimal from 10, two below; "–" for NaN.
func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case math.Abs(v) < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case math.Abs(v) < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtPct formats a loss percentage.
func fmtPct(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " %" }

// fmtRatio formats a ratio such as 2.35×; +Inf (a peer at zero) is ∞.
func fmtRatio(v float64) string {
	if math.IsInf(v, 1) {
		return "∞"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}

// fmtShare formats the load generator's CPU share, a fraction, as a percentage.
func fmtShare(v float64) string { return strconv.FormatFloat(v*100, 'f', 0, 64) + " %" }

// fmtMiB formats a byte count in MiB.
func fmtMiB(v float64) string { return strconv.FormatFloat(v/(1<<20), 'f', 1, 64) + " MiB" }

// writeTable writes a markdown table whose columns are padded to equal
// width, so that it also reads well as plain text. align holds 'l' or 'r'
// per column.
func writeTable(w io.Writer, header []string, align string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = max(utf8.RuneCountInString(h), 3)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	pad := func(s string, i int) string {
		n := widths[i] - utf8.RuneCountInString(s)
		if align[i] == 'r' {
			return strings.Repeat(" ", n) + s
		}
		return s + strings.Repeat(" ", n)
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + pad(c, i) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(header)
	seps := make([]string, len(header))
	for i := range header {
		seps[i] = strings.Repeat("-", widths[i])
		if align[i] == 'r' {
			seps[i] = seps[i][1:] + ":"
		}
	}
	line(seps)
	for _, r := range rows {
		line(r)
	}
	fmt.Fprintln(w)
}

// runsCell shows successful runs out of all, such as "3/3".
func runsCell(c cellStats) string {
	return fmt.Sprintf("%d/%d", c.OK, c.OK+c.Failed)
}

// renderTables writes the result sections: medians, ratios and targets.
func renderTables(w io.Writer, rep *report) {
	var tput, lat, conns, silent []scenarioSpec
	for _, s := range rep.Scenarios {
		switch {
		case s.throughputKind():
			tput = append(tput, s)
		case s.Kind == "latency":
			lat = append(lat, s)
		case s.Kind == "conns":
			conns = append(conns, s)
		case s.Kind == "silent":
			silent = append(silent, s)
		}
	}
	cell := func(s scenarioSpec, b string) (cellStats, bool) {
		c, ok := rep.Cells[cellKey{s.ID, b}]
		return c, ok && c.OK > 0
	}
	na := func(c cellStats, ok bool, f func(cellStats) string) string {
		if !ok {
			return "–"
		}
		return f(c)
	}

	if len(tput) > 0 {
		fmt.Fprintln(w, "## Throughput (medians)")
		fmt.Fprintln(w)
		var rows [][]string
		for _, s := range tput {
			for _, b := range rep.Brokers {
				c, ok := cell(s, b)
				rows = append(rows, []string{s.ID, b,
					na(c, ok, func(c cellStats) string { return fmtNum(c.DeliveriesPerS) }),
					na(c, ok, func(c cellStats) string { return fmtNum(c.PerCPU) }),
					na(c, ok, func(c cellStats) string { return fmtPct(c.LossPct) }),
					na(c, ok, func(c cellStats) string { return fmtShare(c.BenchCPUShare) }),
					runsCell(rep.Cells[cellKey{s.ID, b}]),
				})
			}
		}
		writeTable(w, []string{"scenario", "broker", "deliveries/s", "deliveries/CPU-s", "loss", "tool CPU share", "runs"}, "llrrrrr", rows)

		fmt.Fprintln(w, "## Spread of deliveries/CPU-s")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "The lowest, median and highest of the runs, and the highest over the lowest.")
		fmt.Fprintln(w)
		rows = nil
		for _, s := range tput {
			for _, b := range rep.Brokers {
				c, ok := cell(s, b)
				rows = append(rows, []string{s.ID, b,
					na(c, ok, func(c cellStats) string { return fmtNum(c.PerCPUMin) }),
					na(c, ok, func(c cellStats) string { return fmtNum(c.PerCPU) }),
					na(c, ok, func(c cellStats) string { return fmtNum(c.PerCPUMax) }),
					na(c, ok, func(c cellStats) string {
						if r, ok := ratio(c.PerCPUMax, c.PerCPUMin); ok {
							return fmtRatio(r)
						}
						return "–"
					}),
					runsCell(rep.Cells[cellKey{s.ID, b}]),
				})
			}
		}
		writeTable(w, []string{"scenario", "broker", "min", "median", "max", "max ÷ min", "runs"}, "llrrrrr", rows)
	}
	if len(lat) > 0 {
		fmt.Fprintln(w, "## Latency (medians)")
		fmt.Fprintln(w)
		var rows [][]string
		for _, s := range lat {
			for _, b := range rep.Brokers {
				c, ok := cell(s, b)
				rows = append(rows, []string{s.ID, b,
					na(c, ok, func(c cellStats) string { return fmtNum(c.P50) }),
					na(c, ok, func(c cellStats) string { return fmtNum(c.P99) }),
					na(c, ok, func(c cellStats) string { return fmtNum(c.P999) }),
					na(c, ok, func(c cellStats) string { return fmtNum(c.DeliveriesPerS) }),
					na(c, ok, func(c cellStats) string { return fmtPct(c.LossPct) }),
					na(c, ok, func(c cellStats) string { return fmtShare(c.BenchCPUShare) }),
					runsCell(rep.Cells[cellKey{s.ID, b}]),
				})
			}
		}
		writeTable(w, []string{"scenario", "broker", "p50 µs", "p99 µs", "p99.9 µs", "deliveries/s", "loss", "tool CPU share", "runs"}, "llrrrrrrr", rows)
	}
	if len(conns) > 0 {
		fmt.Fprintln(w, "## Connections (medians)")
		fmt.Fprintln(w)
		var rows [][]string
		for _, s := range conns {
			for _, b := range rep.Brokers {
				c, ok := cell(s, b)
				rows = append(rows, []string{s.ID, b,
					na(c, ok, func(c cellStats) string { return fmtNum(c.ConnectPerS) }),
					na(c, ok, func(c cellStats) string { return fmtNum(c.BytesPerConn) }),
					na(c, ok, func(c cellStats) string { return fmtMiB(c.RSSBytes) }),
					runsCell(rep.Cells[cellKey{s.ID, b}]),
				})
			}
		}
		writeTable(w, []string{"scenario", "broker", "connects/s", "bytes/conn", "broker RSS", "runs"}, "llrrrr", rows)
	}
	if len(silent) > 0 {
		renderSilentTable(w, rep, silent)
	}

	if len(rep.Ratios) > 0 {
		fmt.Fprintln(w, "## vanemq ÷ peers")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Above 1 is better for vanemq, except for latency and memory per silent connection, where below 1 is better.")
		fmt.Fprintln(w)
		var rows [][]string
		for _, r := range rep.Ratios {
			val := func(b string) string {
				if v, ok := r.Values[b]; ok {
					return fmtNum(v)
				}
				return "–"
			}
			rat := func(v float64) string {
				if v > 0 {
					return fmtRatio(v)
				}
				return "–"
			}
			better := "–"
			if r.VsBetter > 0 {
				better = fmtRatio(r.VsBetter) + " (" + r.BetterPeer + ")"
			}
			rows = append(rows, []string{r.Scenario.ID, r.Metric.Name,
				val(brokerVanemq), val(brokerMochi), val(brokerMosquitto),
				rat(r.VsMochi), rat(r.VsMosquitto), better})
		}
		writeTable(w, []string{"scenario", "metric", "vanemq", "mochi", "mosquitto", "÷ mochi", "÷ mosquitto", "÷ better peer"}, "llrrrrrr", rows)
	}

	if len(rep.Targets) > 0 {
		fmt.Fprintln(w, "## Targets")
		fmt.Fprintln(w)
		pass := 0
		var rows [][]string
		for _, t := range rep.Targets {
			if t.Status == statusPass {
				pass++
			}
			rows = append(rows, []string{t.Target, t.Scenario, t.Status, t.Measured, t.Margin})
		}
		fmt.Fprintf(w, "%d of %d targets pass.\n\n", pass, len(rep.Targets))
		writeTable(w, []string{"target", "scenario", "result", "measured (vanemq vs peer)", "margin"}, "lllll", rows)
	}

	if len(rep.Failures) > 0 {
		fmt.Fprintln(w, "## Failed runs")
		fmt.Fprintln(w)
		for _, f := range rep.Failures {
			fmt.Fprintf(w, "- %s, round %d, %s: %s\n", f.Scenario, f.Round+1, f.Broker, truncate(oneLine(f.Err.Error()), 600))
		}
		fmt.Fprintln(w)
	}
}

// nounCount is "1 round", "3 rounds".
func nounCount(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// oneLine joins the lines of s with spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// renderMarkdown writes the whole report: setup, method, scenarios and
// results.
func renderMarkdown(w io.Writer, rep *report) {
	e := rep.Env
	fmt.Fprintln(w, "# Benchmarks: vanemq, mochi-mqtt and Mosquitto")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "<!-- Generated by `make bench-compare` (bin/vanemq-bench compare). Do not edit: run it again. -->")
	fmt.Fprintln(w)
	if rep.Quick {
		fmt.Fprintln(w, "**This is a quick smoke run (-quick: one round of 2 s per scenario); its numbers are noisy.**")
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "## Setup")
	fmt.Fprintln(w)
	nofile := "unknown"
	if e.NoFile.Cur > 0 {
		nofile = strconv.FormatUint(e.NoFile.Cur, 10)
	}
	writeTable(w, []string{"", ""}, "ll", [][]string{
		{"date", e.Started.UTC().Format("2006-01-02 15:04 UTC")},
		{"machine", fmt.Sprintf("%s, %d logical CPUs, %s", e.CPU, e.Cores, e.Kernel)},
		{"Go", e.GoVersion},
		{"vanemq", e.Vanemq + " (git describe)"},
		{"mochi-mqtt", e.Mochi + " (cmd/vanemq-bench/peers/mochi)"},
		{"Mosquitto", e.Mosquitto + " (Debian package)"},
		{"open files limit", nofile + " for every process"},
	})

	fmt.Fprintln(w, "## How to reproduce")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```sh")
	fmt.Fprintln(w, "make bench-compare                              # ROUNDS=3 BENCH_DURATION=10s")
	fmt.Fprintln(w, "make bench-compare ROUNDS=5 BENCH_DURATION=30s  # longer, steadier")
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "`make bench-compare` builds `bin/vanemq`, `bin/vanemq-bench` and the mochi-mqtt peer")
	fmt.Fprintln(w, "`bin/peer-mochi` (its own Go module in `cmd/vanemq-bench/peers/mochi`, so vanemq never")
	fmt.Fprintln(w, "depends on mochi), installs Debian's `mosquitto` when it is missing, and runs:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```sh")
	fmt.Fprintln(w, rep.Command)
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Add `-run REGEXP` to run only the scenarios whose ID matches, or `-quick` for a smoke run.")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Method")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- Everything runs on one machine over loopback (127.0.0.1): the brokers and the load generator\n"+
		"  `vanemq-bench` share its %d logical CPUs. *Tool CPU share* is the generator's part of the\n"+
		"  generator's plus the broker's CPU time; where it is high, the generator, not the broker, may\n"+
		"  be the limit of deliveries/s (deliveries per broker CPU-second is less affected).\n", e.Cores)
	fmt.Fprintf(w, "- For every scenario and round each broker is started fresh on a free port, the generator runs\n"+
		"  %s of warm-up and then measures for %s, and the broker is stopped (SIGTERM, then SIGKILL after %s).\n",
		rep.Warmup, rep.Duration, defaultStopTimeout)
	fmt.Fprintf(w, "- %s%s. The brokers are interleaved and their order alternates per round\n"+
		"  (vanemq, mochi, mosquitto; then mosquitto, mochi, vanemq; …), so drift in the machine's state\n"+
		"  falls on all of them alike. The tables show the median over the rounds (the mean of the two\n"+
		"  middle values for an even count) of the runs that succeeded; *runs* counts them.\n",
		nounCount(rep.Rounds, "round"), rep.MoreRounds)
	fmt.Fprintln(w, "- *Deliveries/s* counts messages received by subscribers per second; *deliveries/CPU-s* divides")
	fmt.Fprintln(w, "  them by the broker process's user + system CPU time from the window's start to the end of the")
	fmt.Fprintln(w, "  drain for late deliveries (read from /proc with -broker-pid): work done per unit of CPU,")
	fmt.Fprintln(w, "  independent of how many cores a broker spreads over. Only messages stamped inside the window")
	fmt.Fprintln(w, "  count; *loss* is 1 − received ÷ expected among them. A run in which no message could be")
	fmt.Fprintln(w, "  published inside the window measures nothing and is listed as failed. *Bytes/conn* is the growth")
	fmt.Fprintln(w, "  of the broker's resident memory divided by the number of idle connections.")
	fmt.Fprintln(w, "- *Silent* rows open 3 waves of connections that each send 4 bytes, the fixed header of a")
	fmt.Fprintln(w, "  packet declaring 1 MiB (a CONNECT; or, after a real CONNECT, a PUBLISH), and then nothing;")
	fmt.Fprintf(w, "  each wave is held %s and closed before the next. Their *bytes/conn* is the worst wave's\n", silentHold)
	fmt.Fprintln(w, "  peak resident memory over the memory before that wave, divided by the connections of a wave;")
	fmt.Fprintln(w, "  *from start* is the worst over the memory before the first wave, which also holds what the")
	fmt.Fprintln(w, "  broker kept from earlier waves (in a garbage-collected broker, garbage not yet collected).")
	fmt.Fprintln(w, "  Connections the broker closes count as its defence, not a failure. Meanwhile a healthy client")
	fmt.Fprintln(w, "  connects 5 times per wave and round-trips a PINGREQ; *healthy served* counts the attempts served.")
	fmt.Fprintln(w, "- Ratios against a peer that delivered nothing read ∞.")
	fmt.Fprintln(w, "- MQTT 3.1.1 in every row but the one marked MQTT 5, so that every broker takes part.")
	fmt.Fprintln(w, "- Configurations: vanemq with one TCP listener, `$SYS` off, warn-level logs and no store (state in")
	fmt.Fprintln(w, "  memory only, as the peers keep it); mochi-mqtt")
	fmt.Fprintln(w, "  v2 with its defaults, the allow-all auth hook, one TCP listener and `$SYS` every year (it")
	fmt.Fprintln(w, "  cannot turn it off); Mosquitto with vanemq's queue and inflight limits and no persistence:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```yaml")
	fmt.Fprint(w, vanemqConfig(1883))
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```")
	fmt.Fprint(w, mosquittoConfig(1883))
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "(with a free port in place of 1883).")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Scenarios")
	fmt.Fprintln(w)
	var rows [][]string
	for _, s := range rep.Scenarios {
		rows = append(rows, []string{s.ID, s.Title, "`" + strings.Join(s.toolArgs(rep.Duration, rep.Warmup), " ") + "`"})
	}
	writeTable(w, []string{"ID", "scenario", "vanemq-bench flags"}, "lll", rows)

	renderTables(w, rep)

	fmt.Fprintln(w, "Targets, from the issue: deliveries per broker CPU-second at least 2.0× the better peer in each")
	fmt.Fprintln(w, "fan-in, fan-out and pairs row, with loss no worse than that peer's (within 0.005 percentage")
	fmt.Fprintln(w, "points); latency p99 no higher than Mosquitto's at QoS 0 and 1; at most 6144 bytes per idle")
	fmt.Fprintln(w, "connection at 10000 connections; a connect rate at least 1.5× the better peer's; and from")
	fmt.Fprintln(w, "issue 15, at most 8192 bytes per silent connection (the worst wave's) at 2000 connections over")
	fmt.Fprintln(w, "3 waves, with the healthy client served every time.")
}
