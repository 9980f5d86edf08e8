package vanemqcmd

// `vanemq data check [--config FILE]` reads the store the configuration's
// storage section names (the embedded default's, ./data, without
// --config) and prints what it holds, one count a line: sessions,
// subscriptions, inflight, queued, inbound, messages, retained and
// dangling (records that refer to nothing, or that nothing refers to,
// which the broker removes when it starts). It changes nothing: a pebble
// data directory is opened read-only, and one that does not exist is an
// error rather than created.
//
// Exit status: 0 when the store was read, 1 when it could not be (a bad
// configuration, storage type memory, a missing, damaged or foreign data
// directory, an unreachable Redis or NATS server), 2 for bad usage.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/vanemq/vanemq/hooks/storage"
)

// runData runs `vanemq data` with the arguments after "data" and returns
// the exit status. The report goes to stdout, errors to stderr.
func runData(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: vanemq data check [--config FILE]\n\n"+
			"Reads the store the configuration's storage section names and prints what it holds.\n")
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "vanemq data: want a command: check")
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "check":
		return runDataCheck(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stderr)
		return 0
	}
	fmt.Fprintf(stderr, "vanemq data: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// runDataCheck runs `vanemq data check` with the arguments after "check".
func runDataCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("vanemq data check", flag.ContinueOnError)
	fset.SetOutput(stderr)
	configPath := fset.String("config", "", "read the storage section of the configuration `FILE` (default: the embedded default, ./data)")
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), "Usage: vanemq data check [--config FILE]\n\n"+
			"Reads the store the configuration's storage section names, without changing it,\n"+
			"and prints how many sessions, subscriptions, messages and other records it holds.\n\nFlags:\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "vanemq data check: unexpected argument %q\n", fset.Arg(0))
		fset.Usage()
		return 2
	}

	cfg, err := loadConfig(*configPath)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			fmt.Fprintln(stderr, err) // FILE:LINE: KEY: MESSAGE, one a line
		} else {
			fmt.Fprintf(stderr, "vanemq data check: %v\n", err)
		}
		return 1
	}
	if cfg.Storage.Type == storage.TypeMemory {
		fmt.Fprintln(stderr, "vanemq data check: storage type memory keeps no data to check: the broker's state lives in its memory only")
		return 1
	}
	sc, err := cfg.Storage.storeConfig(cfg.Dir, newLogger(stderr, cfg.Log))
	if err != nil {
		fmt.Fprintf(stderr, "vanemq data check: %v\n", err)
		return 1
	}
	counts, err := storage.Check(ctx, sc)
	if err != nil {
		fmt.Fprintf(stderr, "vanemq data check: %v\n", err) // names the directory or the server
		return 1
	}
	for _, c := range []struct {
		name string
		n    int
	}{
		{"sessions", counts.Sessions},
		{"subscriptions", counts.Subscriptions},
		{"inflight", counts.Inflight},
		{"queued", counts.Queued},
		{"inbound", counts.Inbound},
		{"messages", counts.Messages},
		{"retained", counts.Retained},
		{"dangling", counts.Dangling},
	} {
		fmt.Fprintf(stdout, "%s: %d\n", c.name, c.n)
	}
	return 0
}
