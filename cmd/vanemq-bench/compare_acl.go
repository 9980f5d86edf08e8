package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// aclUsage is printed for -h and for bad usage of the acl command.
const aclUsage = `Usage: vanemq-bench acl [flags]

Measures what read permission checked at delivery costs (issue 17): vanemq's
fan-out 1→50, 50 subscribers on # and one publisher rotating over allowed
topics, once with the default configuration and once with auth.file (a users
file and an ACL), the clients connecting with credentials in both. For every
scenario and round it starts each configuration fresh on a free port, in an
order that alternates per round, runs vanemq-bench -json against it, and
stops it. It prints the medians, their spread, and auth.file ÷ default of
deliveries per broker CPU-second against the issue's target (≥ 0.8×), and
writes them with the method and machine to -out. It exits non-zero if a run
fails.

Flags:
`

// brokerVanemqAuthFile is vanemq with auth.file: vanemqAuthFileConfig.
const brokerVanemqAuthFile = "vanemq+auth.file"

// aclBrokerNames lists the acl command's configurations in the order of the
// first round.
func aclBrokerNames() []string {
	return []string{brokerVanemq, brokerVanemqAuthFile}
}

// isVanemq reports whether broker is vanemq in one of its configurations.
func isVanemq(broker string) bool {
	return broker == brokerVanemq || broker == brokerVanemqAuthFile
}

// profileName is the file name of the CPU profile of one run.
func profileName(scenario, broker string, round int) string {
	return fmt.Sprintf("%s.%s.%d.pprof", scenario, broker, round+1)
}

// The acl command's load and the users and rules of its auth.file.
const (
	// aclSubscribers and aclPublishers are the clients of its scenarios;
	// the users file has a user for each.
	aclSubscribers = 50
	aclPublishers  = 1
	// aclUsername is every client's -username: bench-s0 … bench-s49 and
	// bench-p0.
	aclUsername = "bench-" + clientPlaceholder
	// aclPassword is every bench user's password.
	aclPassword = "bench-password"
	// aclBcryptCost is the users' bcrypt cost, the lowest: 51 clients
	// connect before each run, and the logins are not what is measured.
	aclBcryptCost = bcrypt.MinCost
	// aclTopicPattern makes the publisher's topics, all of them allowed:
	// public/news/{n} (read through the last rule) and
	// sensors/{n}/temperature (through the one before it).
	aclTopicPattern = "public/news/" + topicNumber + ",sensors/" + topicNumber + "/temperature"
	// aclFewTopics fits in a session's cache of read verdicts as it starts
	// (64 slots); aclManyTopics makes it grow.
	aclFewTopics  = 8
	aclManyTopics = 1000
	// targetACLRatio is issue 17's least auth.file ÷ default of deliveries
	// per broker CPU-second.
	targetACLRatio = 0.8
)

// aclRules is the ACL of the auth.file configuration: issue 17's "deny
// subscribe secret/#, allow both #", with rules before the last that a
// deployment would have. The subscribers' # is granted (users/%u/# overlaps
// it and no deny rule covers it) and filtered at delivery; the publisher's
// topics are all readable.
const aclRules = `# Written by vanemq-bench acl.
rules:
  # Nobody reads the secrets, not even through "#".
  - {allow: false, action: subscribe, filter: "secret/#"}
  - {allow: false, action: both, filter: "internal/+/keys"}
  - {user: admin, allow: true, action: both, filter: "#"}
  - {allow: true, action: both, filter: "users/%u/#"}
  - {client: sensor-1, allow: true, action: publish, filter: "devices/%c/+"}
  - {allow: false, action: publish, filter: "public/announcements"}
  - {allow: true, action: subscribe, filter: "sensors/+/temperature"}
  - {allow: true, action: both, filter: "#"}
`

// aclUsers are the user names of the bench clients, as the tool makes them
// from aclUsername.
func aclUsers() []string {
	cfg := benchConfig{Username: aclUsername}
	var users []string
	for i := range aclSubscribers {
		users = append(users, cfg.username('s', i))
	}
	for i := range aclPublishers {
		users = append(users, cfg.username('p', i))
	}
	return users
}

// aclUsersFile is a users file giving each of users aclPassword, hashed at
// aclBcryptCost.
func aclUsersFile(users []string) (string, error) {
	var b strings.Builder
	b.WriteString("# Written by vanemq-bench acl.\nusers:\n")
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(aclPassword), aclBcryptCost)
		if err != nil {
			return "", fmt.Errorf("hash the password of %s: %w", u, err)
		}
		fmt.Fprintf(&b, "  - {username: %s, password: '%s'}\n", u, h)
	}
	return b.String(), nil
}

// vanemqAuthFileConfig is vanemqConfig with auth.file authenticating every
// client (no anonymous ones) and authorizing with aclRules. usersFile and
// aclFile are taken from the config file's directory.
func vanemqAuthFileConfig(port int, usersFile, aclFile string) string {
	cfg := strings.Replace(vanemqConfig(port), "# Written by vanemq-bench compare.",
		"# Written by vanemq-bench acl: vanemq-bench compare's configuration, with auth.file.", 1)
	cfg = strings.Replace(cfg, "allow_anonymous: true", "allow_anonymous: false", 1)
	return cfg + fmt.Sprintf(`hooks:
  - id: auth.file
    priority: 100
    config:
      users: %s
      acl: %s
      # The bench clients connect all at once: room for their logins.
      verify_queue: 256
`, usersFile, aclFile)
}

// writeAuthFileConfig writes vanemqAuthFileConfig, its users file and its
// ACL to dir and returns the config's path.
func writeAuthFileConfig(dir string, port int) (string, error) {
	users, err := aclUsersFile(aclUsers())
	if err != nil {
		return "", err
	}
	files := []struct{ name, text string }{
		{"users.yaml", users},
		{"acl.yaml", aclRules},
		{"vanemq-auth-file.yaml", vanemqAuthFileConfig(port, "users.yaml", "acl.yaml")},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.text), 0o600); err != nil {
			return "", fmt.Errorf("write %s config: %w", brokerVanemqAuthFile, err)
		}
	}
	return filepath.Join(dir, files[len(files)-1].name), nil
}

// aclMatrix is the acl command's scenarios: fan-out 1→50 on #, QoS 0 and
// 1, 64 B, over topics that fit in the cache of read verdicts and over
// many more.
func aclMatrix() []scenarioSpec {
	row := func(qos, topics int) scenarioSpec {
		return scenarioSpec{
			ID:   fmt.Sprintf("fanout-acl-q%d-64-t%d", qos, topics),
			Kind: scenarioFanout,
			Title: fmt.Sprintf("fan-out 1→%d on #, QoS %d, 64 B, %d rotating topics, with credentials",
				aclSubscribers, qos, topics),
			MQTT: 4, QoS: qos, Size: 64, Publishers: aclPublishers, Subscribers: aclSubscribers,
			Filter: "#", Topics: topics, TopicPattern: aclTopicPattern,
			Username: aclUsername, Password: aclPassword,
		}
	}
	return []scenarioSpec{row(0, aclFewTopics), row(1, aclFewTopics), row(0, aclManyTopics), row(1, aclManyTopics)}
}

// runACL is the acl command: args are the arguments after "acl". It writes
// the tables to stdout and progress and diagnostics to stderr. It returns an
// error for bad usage, when the vanemq binary is missing, when ctx ends, or,
// after writing the report, when a run failed.
func runACL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseACLFlags(args, stderr)
	if err != nil {
		return err
	}
	tool, err := os.Executable()
	if err != nil {
		return fmt.Errorf("acl: find own executable: %w", err)
	}
	opts.tool = tool
	return opts.runACL(ctx, stdout, stderr)
}

// parseACLFlags parses the acl command's flags. -h returns flag.ErrHelp
// after printing the usage to stderr.
func parseACLFlags(args []string, stderr io.Writer) (*compareOptions, error) {
	fs := flag.NewFlagSet("vanemq-bench acl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), aclUsage)
		fs.PrintDefaults()
	}
	o := &compareOptions{
		args:         append([]string(nil), args...),
		startTimeout: defaultStartTimeout,
		stopTimeout:  defaultStopTimeout,
	}
	fs.StringVar(&o.vanemqBin, "vanemq", "bin/vanemq", "the vanemq broker `binary`")
	fs.IntVar(&o.rounds, "rounds", defaultACLRounds, "`runs` of each scenario per configuration; the report shows medians")
	fs.DurationVar(&o.duration, "duration", defaultACLDuration, "measured `time` of each run")
	fs.StringVar(&o.out, "out", "", "write the report to `FILE`; empty for none")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: 2s runs, 1 round")
	fs.StringVar(&o.profileDir, "profile", "", "write a CPU profile of every vanemq run into `DIR` (vanemq --cpuprofile), named scenario.broker.round.pprof")
	run := fs.String("run", "", "only run the scenarios whose ID matches `REGEXP` (IDs such as fanout-acl-q0-64-t8)")
	if err := o.parseFlags(fs, args, run, "acl"); err != nil {
		return nil, err
	}
	return o, nil
}

// Defaults of the acl command: more rounds than compare's, shorter ones,
// for a median and a spread of ratios on a shared machine.
const (
	defaultACLRounds   = 5
	defaultACLDuration = 5 * time.Second
)

// runACL runs the measurement, writes the report and prints the tables.
func (o *compareOptions) runACL(ctx context.Context, stdout, stderr io.Writer) error {
	scenarios := selectScenarios(aclMatrix(), o.filter)
	if len(scenarios) == 0 {
		return fmt.Errorf("acl: -run %q matches no scenario", o.filter)
	}
	var bins brokerBinaries
	var err error
	if bins.vanemq, err = lookBinary(o.vanemqBin); err != nil {
		return fmt.Errorf("acl: vanemq broker: %w (build it with: make build)", err)
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return fmt.Errorf("acl: -profile: %w", err)
		}
	}
	limit, err := raiseNoFileLimit()
	if err != nil {
		fmt.Fprintf(stderr, "acl: warning: %v\n", err)
	}
	env := gatherEnv(ctx, bins)
	env.NoFile = limit
	env.Started = time.Now()

	dir, err := os.MkdirTemp("", "vanemq-bench-acl-")
	if err != nil {
		return fmt.Errorf("acl: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	brokers := aclBrokerNames()
	records, err := o.runMatrix(ctx, "acl", scenarios, brokers, stderr, func(sc scenarioSpec, b string, round int) runRecord {
		return o.runOnce(ctx, dir, bins, sc, b, round)
	})
	if err != nil {
		return err
	}
	rep := &aclReport{
		report: report{
			Env:       env,
			Rounds:    o.rounds,
			Duration:  o.duration,
			Warmup:    o.warmup,
			Quick:     o.quick,
			Command:   aclCommandLine(o.args),
			Scenarios: scenarios,
			Brokers:   brokers,
			Cells:     summarize(records),
		},
		Ratios: aclRatios(scenarios, records),
	}
	for _, r := range records {
		if r.Err != nil {
			rep.Failures = append(rep.Failures, r)
		}
	}
	var md bytes.Buffer
	renderACLMarkdown(&md, rep)
	if o.out != "" {
		if err := os.WriteFile(o.out, md.Bytes(), 0o644); err != nil {
			return fmt.Errorf("acl: write report: %w", err)
		}
	}
	renderACLTables(stdout, rep)
	if o.out != "" {
		fmt.Fprintf(stderr, "acl: wrote %s\n", o.out)
	}
	if n := len(rep.Failures); n > 0 {
		return fmt.Errorf("acl: %d of %d runs failed (listed in the report)", n, len(records))
	}
	return nil
}

// aclCommandLine is the acl command line for args, quoted for a shell.
func aclCommandLine(args []string) string {
	return strings.Replace(commandLine(args), "bin/vanemq-bench compare", "bin/vanemq-bench acl", 1)
}

// errNoPair says a round lacks a successful run of one configuration.
var errNoPair = errors.New("no pair")

// roundRatio is auth.file ÷ default of deliveries per broker CPU-second in
// one round, whose two runs ran one after the other.
func roundRatio(records []runRecord, scenario string, round int) (float64, error) {
	var plain, auth *benchResult
	for i := range records {
		r := &records[i]
		if r.Scenario != scenario || r.Round != round || r.Err != nil {
			continue
		}
		switch r.Broker {
		case brokerVanemq:
			plain = &r.Result
		case brokerVanemqAuthFile:
			auth = &r.Result
		}
	}
	if plain == nil || auth == nil {
		return 0, errNoPair
	}
	v, ok := ratio(auth.DeliveriesPerBrokerCPUS, plain.DeliveriesPerBrokerCPUS)
	if !ok || math.IsInf(v, 0) {
		return 0, errNoPair
	}
	return v, nil
}
