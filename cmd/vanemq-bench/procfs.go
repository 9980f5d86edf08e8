package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultClockTicks is the kernel's USER_HZ on every common Linux
// architecture, used when getconf cannot tell.
const defaultClockTicks = 100

// procProbe reads the broker's CPU time and memory from /proc, summed over
// its processes (a cluster's may be several), and this process's CPU time.
// Without a PID it reports zeros for the broker.
type procProbe struct {
	pids  []int
	ticks int64 // clock ticks per second of /proc/PID/stat times
}

// cpuSample is CPU time used so far, by the broker and by this tool.
type cpuSample struct {
	broker, self time.Duration
	// byPID is the broker's, process by process in the probe's order.
	byPID []time.Duration
}

// newProcProbe returns a probe of the processes pids (none: no broker),
// checking that their /proc entries can be read.
func newProcProbe(ctx context.Context, pids []int) (*procProbe, error) {
	p := &procProbe{pids: pids, ticks: defaultClockTicks}
	if len(pids) == 0 {
		return p, nil
	}
	if _, err := p.brokerCPU(); err != nil {
		return nil, err
	}
	p.ticks = clockTicks(ctx)
	return p, nil
}

// clockTicks returns CLK_TCK as `getconf CLK_TCK` prints it, or
// defaultClockTicks when that fails.
func clockTicks(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err != nil {
		return defaultClockTicks
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return defaultClockTicks
	}
	return n
}

// sample reads the broker's and this process's CPU time.
func (p *procProbe) sample() (cpuSample, error) {
	s := cpuSample{byPID: make([]time.Duration, len(p.pids))}
	for i, pid := range p.pids {
		ticks, err := readProc(pid, "stat", "broker CPU time", parseProcStat)
		if err != nil {
			return s, err
		}
		s.byPID[i] = time.Duration(ticks) * time.Second / time.Duration(p.ticks)
		s.broker += s.byPID[i]
	}
	s.self = selfCPU()
	return s, nil
}

// brokerCPU returns the broker's user plus system CPU time, that of all its
// processes.
func (p *procProbe) brokerCPU() (time.Duration, error) {
	ticks, err := sumProc(p.pids, "stat", "broker CPU time", parseProcStat)
	return time.Duration(ticks) * time.Second / time.Duration(p.ticks), err
}

// brokerRSS returns the broker's resident set size in bytes, that of all
// its processes.
func (p *procProbe) brokerRSS() (int64, error) {
	return sumProc(p.pids, "status", "broker memory", parseVmRSS)
}

// sumProc is the sum of readProc over pids; 0 without any.
func sumProc[T uint64 | int64](pids []int, name, what string, parse func(string) (T, error)) (T, error) {
	var sum T
	for _, pid := range pids {
		v, err := readProc(pid, name, what, parse)
		if err != nil {
			return sum, err
		}
		sum += v
	}
	return sum, nil
}

// joinPIDs is pids as -broker-pid takes them: comma-separated.
func joinPIDs(pids []int) string {
	s := make([]string, len(pids))
	for i, pid := range pids {
		s[i] = strconv.Itoa(pid)
	}
	return strings.Join(s, ",")
}

// watchRSS reads the broker's VmRSS every rssInterval until the returned
// stop is called, which reads it once more and returns the highest
// reading, or the first error.
func (p *procProbe) watchRSS() (stop func() (int64, error)) {
	done, finished := make(chan struct{}), make(chan struct{})
	var peak int64
	var err error
	go func() {
		defer close(finished)
		t := time.NewTicker(rssInterval)
		defer t.Stop()
		for {
			rss, rerr := p.brokerRSS()
			if rerr != nil {
				err = rerr
				return
			}
			peak = max(peak, rss)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int64, error) {
		close(done)
		<-finished
		if err != nil {
			return peak, err
		}
		rss, err := p.brokerRSS()
		return max(peak, rss), err
	}
}

// readProc reads /proc/PID/name and parses it; errors say what was being
// read. Without a PID (0) it returns the zero value.
func readProc[T any](pid int, name, what string, parse func(string) (T, error)) (T, error) {
	var zero T
	if pid == 0 {
		return zero, nil
	}
	path := fmt.Sprintf("/proc/%d/%s", pid, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	v, err := parse(string(data))
	if err != nil {
		return zero, fmt.Errorf("%s: %s: %w", what, path, err)
	}
	return v, nil
}

// parseProcStat returns utime+stime, fields 14 and 15 of a /proc/PID/stat
// line, in clock ticks. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself, so fields are counted from the
// last ')'.
func parseProcStat(line string) (uint64, error) {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return 0, fmt.Errorf("no ')' closing the command name in %q", abbrev(line))
	}
	// After the name come field 3 (state), 4, …: utime is field 14.
	fields := strings.Fields(line[end+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, need %d", len(fields), stime+1)
	}
	u, err := strconv.ParseUint(fields[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	s, err := strconv.ParseUint(fields[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return u + s, nil
}

// parseVmRSS returns the VmRSS of a /proc/PID/status file, in bytes.
func parseVmRSS(status string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q is not \"VmRSS: N kB\"", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS line (a kernel thread or a zombie?)")
}

// selfCPU returns the user plus system CPU time this process used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// abbrev shortens s for an error message.
func abbrev(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
