package vanemqcmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the terminal: %v", err)
	}
	return master, slave
}

// waitEcho waits until the terminal's echo is on or off. Terminal
// settings have no event to wait on, so they are polled.
func waitEcho(t *testing.T, tty *os.File, on bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatalf("tcgetattr: %v", err)
		}
		if (tio.Lflag&unix.ECHO != 0) == on {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminal echo did not turn %v", map[bool]string{true: "on", false: "off"}[on])
		}
		<-tick.C
	}
}

// The terminal path: the password is typed twice with echo off, and the
// terminal gets its echo back.
func TestPasswdTerminal(t *testing.T) {
	tests := []struct {
		name  string
		typed string
		code  int
		want  string
	}{
		{"typed twice", "s3cret\ns3cret\n", 0, "added u"},
		{"mismatch", "s3cret\nother\n", 1, "the passwords differ"},
		{"empty", "\n\n", 1, "empty password refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			master, slave := openPTY(t)
			file := filepath.Join(t.TempDir(), "users.yaml")
			var stderr bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- runPasswd(context.Background(), []string{"--cost", "4", file, "u"}, slave, &stderr) }()
			waitEcho(t, slave, false)
			if _, err := master.WriteString(tc.typed); err != nil {
				t.Fatal(err)
			}
			var code int
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("passwd did not return")
			}
			waitEcho(t, slave, true)
			slave.Close()
			echoed, _ := io.ReadAll(master) // EIO once the terminal is closed and drained
			if strings.Contains(string(echoed), "s3cret") {
				t.Errorf("the password was echoed: %q", echoed)
			}
			out := stderr.String()
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q; want %d and %q", code, out, tc.code, tc.want)
			}
			if !strings.Contains(out, "Password: ") || !strings.Contains(out, "Password again: ") {
				t.Errorf("prompts missing: %q", out)
			}
			if tc.code == 0 {
				checkPassword(t, file, "u", "s3cret")
			}
		})
	}
}

// Ctrl-C at the prompt (ctx cancelled by main's signal handling) restores
// echo and exits 1.
func TestPasswdTerminalInterrupted(t *testing.T) {
	master, slave := openPTY(t)
	defer slave.Close()
	_ = master
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	file := filepath.Join(t.TempDir(), "users.yaml")
	go func() { done <- runPasswd(ctx, []string{file, "u"}, slave, &stderr) }()
	waitEcho(t, slave, false)
	cancel()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("exit %d, output %q; want 1 and interrupted", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("passwd did not return after the interrupt")
	}
	waitEcho(t, slave, true)
	if _, err := os.Stat(file); err == nil {
		t.Error("an interrupted run wrote the file")
	}
}
