package vanemqcmd

// `vanemq passwd [--cost N] FILE USER` adds USER to the auth.file users
// file FILE, or changes USER's password, like mosquitto_passwd. The
// password is read from the terminal without echo, twice, or, when
// standard input is not a terminal, as its first line. FILE is created if
// missing and otherwise rewritten with the other users and comments kept;
// the new file replaces the old one at once (written beside it, then
// renamed), with mode 0600.
//
// Exit status: 0 when the file was written, 1 when it could not be (an
// empty or mismatched password, a users file with problems, an I/O
// error), 2 for bad usage.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/vanemq/vanemq/hooks/auth"
)

// runPasswd runs `vanemq passwd` with the arguments after "passwd" and
// returns the exit status. Prompts, messages and errors go to stderr.
// Cancelling ctx (the first SIGINT or SIGTERM) stops a terminal prompt
// and restores the terminal's echo.
func runPasswd(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) int {
	fset := flag.NewFlagSet("vanemq passwd", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cost := fset.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt `cost`, %d to %d: each step doubles the time a CONNECT's password check takes", bcrypt.MinCost, bcrypt.MaxCost))
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), "Usage: vanemq passwd [--cost N] FILE USER\n\n"+
			"Adds USER to the auth.file users file FILE (created if missing), or changes USER's\n"+
			"password. The password is read from the terminal, or from the first line of standard\n"+
			"input when it is not a terminal.\n\nFlags:\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() != 2 {
		fmt.Fprintf(stderr, "vanemq passwd: want FILE and USER, got %d argument(s)\n", fset.NArg())
		fset.Usage()
		return 2
	}
	file, user := fset.Arg(0), fset.Arg(1)
	switch {
	case *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost:
		fmt.Fprintf(stderr, "vanemq passwd: --cost %d: want %d to %d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	case user == "":
		fmt.Fprintln(stderr, "vanemq passwd: USER is empty")
		return 2
	}
	if strings.ContainsAny(user, "/+#") {
		fmt.Fprintf(stderr, "vanemq passwd: warning: user name %q contains '/', '+' or '#': ACL rules with %%u never match it\n", user)
	}

	password, err := readPassword(ctx, stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "vanemq passwd: %v\n", err)
		return 1
	}
	switch {
	case len(password) == 0:
		fmt.Fprintln(stderr, "vanemq passwd: empty password refused")
		return 1
	case len(password) > auth.MaxPasswordLen:
		fmt.Fprintf(stderr, "vanemq passwd: password is %d bytes long; bcrypt takes at most %d\n", len(password), auth.MaxPasswordLen)
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword(password, *cost)
	if err != nil {
		fmt.Fprintf(stderr, "vanemq passwd: hashing the password: %v\n", err)
		return 1
	}

	target, err := resolveTarget(file)
	if err != nil {
		fmt.Fprintf(stderr, "vanemq passwd: %v\n", err)
		return 1
	}
	old, err := os.ReadFile(target)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "vanemq passwd: %v\n", err)
		return 1
	}
	out, added, err := auth.SetUser(file, old, user, hash)
	if err != nil {
		// One FILE:LINE: KEY: PROBLEM line per problem.
		fmt.Fprintln(stderr, err)
		fmt.Fprintf(stderr, "vanemq passwd: %s not changed\n", file)
		return 1
	}
	if err := writeFileAtomic(target, out, 0o600); err != nil {
		fmt.Fprintf(stderr, "vanemq passwd: %v\n", err)
		return 1
	}
	verb := "changed the password of"
	if added {
		verb = "added"
	}
	fmt.Fprintf(stderr, "vanemq passwd: %s %s in %s\n", verb, user, file)
	return 0
}

// readPassword reads the password: from the terminal without echo,
// twice, when stdin is one; otherwise the first line of stdin, without its
// line ending.
func readPassword(ctx context.Context, stdin io.Reader, prompt io.Writer) ([]byte, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		p1, err := readHidden(ctx, fd, prompt, "Password: ")
		if err != nil {
			return nil, err
		}
		p2, err := readHidden(ctx, fd, prompt, "Password again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p1, p2) {
			return nil, errors.New("the passwords differ")
		}
		return p1, nil
	}
	line, err := bufio.NewReader(stdin).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// readHidden prompts and reads one line from terminal fd with echo off.
// The read runs on its own goroutine so that cancelling ctx (Ctrl-C,
// which main turns into a cancellation rather than an exit) restores echo
// and returns at once; the process ends soon after, with the goroutine.
func readHidden(ctx context.Context, fd int, prompt io.Writer, label string) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("reading the password: %w", err)
	}
	type result struct {
		line []byte
		err  error
	}
	done := make(chan result, 1)
	fmt.Fprint(prompt, label)
	go func() {
		line, err := term.ReadPassword(fd)
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(prompt)
		if r.err != nil {
			return nil, fmt.Errorf("reading the password: %w", r.err)
		}
		return r.line, nil
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		fmt.Fprintln(prompt)
		return nil, errors.New("interrupted")
	}
}

// resolveTarget returns the file to write for path: path itself, or, when
// it is a symbolic link, the file it points to (which may not exist yet),
// so that the link stays.
func resolveTarget(path string) (string, error) {
	for range 40 { // as many links as Linux follows
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil // a missing file is created; other errors show on reading
		}
		t, err := os.Readlink(path)
		if err != nil {
			return "", fmt.Errorf("%s: reading the symbolic link: %w", path, err)
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(path), t)
		}
		path = t
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}

// writeFileAtomic writes data to a new file in path's directory and
// renames it over path, so that a reader (the broker's reload) sees the
// old file or the new one, never a part.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
