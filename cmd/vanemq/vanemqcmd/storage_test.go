package vanemqcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/hooks/storage"
	"github.com/vanemq/vanemq/listeners/admin"
	"github.com/vanemq/vanemq/listeners/tlsfiles/tlstest"
)

func TestStoreConfig(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	t.Run("pebble", func(t *testing.T) {
		for path, want := range map[string]string{"data": "/etc/vanemq/data", "./state/db": "/etc/vanemq/state/db", "/var/lib/vanemq": "/var/lib/vanemq"} {
			sc := withStorage(func(s *storageConfig) {
				s.Path, s.Durability, s.CommitInterval, s.CommitMaxOps = path, "none", 2*time.Millisecond, 7
			})
			c, err := sc.storeConfig("/etc/vanemq", logger)
			if err != nil {
				t.Fatal(err)
			}
			if c.Type != "pebble" || c.Path != want || c.Durability != "none" || c.CommitInterval != 2*time.Millisecond || c.CommitMaxOps != 7 || c.Logger != logger {
				t.Errorf("path %q: %+v, want pebble in %s", path, c, want)
			}
			if c.Redis != (storage.RedisConfig{}) {
				t.Errorf("path %q: Redis settings %+v given to pebble", path, c.Redis)
			}
		}
	})
	t.Run("redis", func(t *testing.T) {
		pki := tlstest.New(t)
		sc := withStorage(func(s *storageConfig) {
			s.Type = "redis"
			s.Redis = redisConfig{Address: "redis.internal:6379", Username: "u", Password: "p", DB: 2, Prefix: "b1",
				DialTimeout: 3 * time.Second,
				// Relative to the config file's directory, the PKI's.
				TLS: &clientTLSConfig{CA: filepath.Base(pki.CAFile), Cert: filepath.Base(pki.ClientCert),
					Key: filepath.Base(pki.ClientKey), ServerName: "redis.example"}}
		})
		c, err := sc.storeConfig(pki.Dir, logger)
		if err != nil {
			t.Fatal(err)
		}
		r := c.Redis
		if c.Type != "redis" || c.Path != "" || r.Address != "redis.internal:6379" || r.Username != "u" || r.Password != "p" ||
			r.DB != 2 || r.Prefix != "b1" || r.DialTimeout != 3*time.Second {
			t.Errorf("config %+v", c)
		}
		if r.TLS == nil || r.TLS.RootCAs == nil || len(r.TLS.Certificates) != 1 || r.TLS.ServerName != "redis.example" {
			t.Fatalf("TLS config %+v, want the CA, the client certificate and the server name", r.TLS)
		}
		sc.Redis.TLS = &clientTLSConfig{CA: "missing-ca.pem"}
		_, err = sc.storeConfig(pki.Dir, logger)
		if want := filepath.Join(pki.Dir, "missing-ca.pem"); err == nil || !strings.HasPrefix(err.Error(), "storage: redis tls: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("missing CA file: %v, want an error naming %s", err, want)
		}
	})
	t.Run("nats", func(t *testing.T) {
		pki := tlstest.New(t)
		sc := withStorage(func(s *storageConfig) {
			s.Type = "nats"
			s.NATS = natsConfig{URLs: []string{"tls://n1:4222", "tls://n2:4222"}, Prefix: "site", Credentials: "vanemq.creds",
				Replicas: 3, Timeout: 2 * time.Second,
				TLS: &clientTLSConfig{CA: filepath.Base(pki.CAFile), Cert: filepath.Base(pki.ClientCert),
					Key: filepath.Base(pki.ClientKey), ServerName: "nats.example"}}
		})
		c, err := sc.storeConfig(pki.Dir, logger)
		if err != nil {
			t.Fatal(err)
		}
		n := c.NATS
		if c.Type != "nats" || c.Path != "" || strings.Join(n.URLs, " ") != "tls://n1:4222 tls://n2:4222" || n.Prefix != "site" ||
			n.Credentials != filepath.Join(pki.Dir, "vanemq.creds") || n.Replicas != 3 || n.Timeout != 2*time.Second {
			t.Errorf("config %+v, want the credentials file relative to %s", c, pki.Dir)
		}
		if n.TLS == nil || n.TLS.RootCAs == nil || len(n.TLS.Certificates) != 1 || n.TLS.ServerName != "nats.example" {
			t.Fatalf("TLS config %+v, want the CA, the client certificate and the server name", n.TLS)
		}
		sc.NATS.TLS = &clientTLSConfig{Cert: "missing.pem", Key: "missing-key.pem"}
		_, err = sc.storeConfig(pki.Dir, logger)
		if want := filepath.Join(pki.Dir, "missing.pem"); err == nil || !strings.HasPrefix(err.Error(), "storage: nats tls: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("missing certificate file: %v, want an error naming %s", err, want)
		}
	})
}

// storageBroker is a config with a TCP listener on a free loopback port
// and pebble storage in dir.
func storageBroker(dir string) string {
	return fmt.Sprintf(`allow_anonymous: true
listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
mqtt: {sys_interval: 0}
storage:
  type: pebble
  path: %q
`, dir)
}

// TestRunStorage checks the start-up line naming the store, that the store
// is closed at shutdown, and that the default store is "data" next to the
// config file.
func TestRunStorage(t *testing.T) {
	t.Run("pebble", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		_, logs := runBroker(t, storageBroker(dir))
		want := "msg=storage engine=pebble where=" + dir + " durability=sync"
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	})
	t.Run("default", func(t *testing.T) {
		config := writeConfig(t, loopbackConfig)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		logs := newLogLines()
		done := make(chan int, 1)
		go func() { done <- run(ctx, []string{"--config", config}, logs) }()
		select {
		case <-logs.addrs:
		case code := <-done:
			t.Fatalf("run returned %d before listening; log:\n%s", code, logs)
		case <-time.After(waitTimeout):
			t.Fatalf("no listening address logged; log:\n%s", logs)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("run = %d; log:\n%s", code, logs)
		}
		dir := filepath.Join(filepath.Dir(config), "data")
		for _, want := range []string{"msg=storage engine=pebble where=" + dir + " durability=sync", `msg="storage closed" where=` + dir} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs)
			}
		}
		// Closed: another store can open the directory.
		if err := openTestStore(t, dir).Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("memory", func(t *testing.T) {
		_, logs := runBroker(t, loopbackConfig+"storage: {type: memory}\n")
		if !strings.Contains(logs.String(), "msg=storage engine=memory note=") {
			t.Errorf("log lacks the memory storage line:\n%s", logs)
		}
		if strings.Contains(logs.String(), "where=") {
			t.Errorf("memory storage names a place:\n%s", logs)
		}
	})
}

// TestRunStorageErrors checks that a store that cannot be opened stops
// start-up with exit status 1 and an error naming it, before any listener
// serves.
func TestRunStorageErrors(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, dir string) // prepares dir
		want string                         // in the error, with dir
	}{
		{"a file, not a directory", func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
		{"held by another store", func(t *testing.T, dir string) {
			st := openTestStore(t, dir)
			t.Cleanup(func() { _ = st.Close() })
		}, "is another vanemq using it?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			tt.make(t, dir)
			var out bytes.Buffer
			if code := run(t.Context(), []string{"--config", writeConfig(t, storageBroker(dir))}, &out); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			var errLine string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "vanemq: ") {
					errLine = l
				}
			}
			if !strings.HasPrefix(errLine, "vanemq: storage: ") || !strings.Contains(errLine, dir) || !strings.Contains(errLine, tt.want) {
				t.Errorf("output:\n%s\nwant a line vanemq: storage: … naming %s and %q", out.String(), dir, tt.want)
			}
			if strings.Contains(out.String(), "msg=listening") || strings.Contains(out.String(), "panic") {
				t.Errorf("the broker listened or panicked:\n%s", out.String())
			}
		})
	}
}

// TestRunStorageClosedOnStartupFailure checks that a store opened before
// start-up fails (here a listener's address is taken) is closed again.
func TestRunStorageClosedOnStartupFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := filepath.Join(t.TempDir(), "data")
	config := writeConfig(t, fmt.Sprintf("listeners:\n  - {id: tcp, type: tcp, address: %q}\nstorage: {path: %q}\n", taken.Addr(), dir))
	var out bytes.Buffer
	if code := run(t.Context(), []string{"--config", config}, &out); code != 1 || !strings.Contains(out.String(), "address already in use") {
		t.Fatalf("exit status %d, output:\n%s\nwant 1 and the address in use", code, out.String())
	}
	if !strings.Contains(out.String(), "msg=storage engine=pebble") {
		t.Fatalf("the store was not opened:\n%s", out.String())
	}
	st, err := storage.Open(t.Context(), storage.Config{Path: dir})
	if err != nil {
		t.Fatalf("the store was left open: %v", err)
	}
	_ = st.Close()
}

// slowLoader is a storage hook whose restore waits for release, or fails
// with fail.
type slowLoader struct {
	loading chan struct{} // closed when LoadRetained is called
	release chan struct{}
	fail    error
}

func (*slowLoader) ID() string { return "test.slowload" }

func (*slowLoader) Events() core.EventSet { return core.EventSet(0) }

func (l *slowLoader) LoadRetained(ctx context.Context) ([]core.StoredMessage, error) {
	close(l.loading)
	select {
	case <-l.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, l.fail
}

func (*slowLoader) LoadSessions(context.Context) ([]core.StoredSession, error) { return nil, nil }

// TestReadyzAfterRestore checks /readyz around a restore: the server
// restores its state inside Start before any listener serves, and the
// admin listener, which answers from Listen on, says 503 (and /healthz
// 200) while the restore runs, 200 only once Start has succeeded, and
// nothing once a failed start has closed it.
func TestReadyzAfterRestore(t *testing.T) {
	for _, fail := range []error{nil, errors.New("disk on fire")} {
		t.Run(fmt.Sprint("fail=", fail), func(t *testing.T) {
			opts := core.DefaultOptions()
			opts.Logger = slog.New(slog.DiscardHandler)
			opts.SysInterval = -1
			srv, err := core.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			loader := &slowLoader{loading: make(chan struct{}), release: make(chan struct{}), fail: fail}
			if err := srv.AddHook(loader, 0); err != nil {
				t.Fatal(err)
			}
			l := admin.New("http", "127.0.0.1:0", srv, admin.Options{Logger: opts.Logger})
			if err := srv.AddListener(l); err != nil {
				t.Fatal(err)
			}
			started := make(chan error, 1)
			go func() { started <- srv.Start(context.Background()) }()
			<-loader.loading

			get := func(timeout time.Duration) (int, error) { return httpGet(l.Address(), "/readyz", timeout) }
			// During the restore: alive, not ready.
			if code, err := get(waitTimeout); err != nil || code != http.StatusServiceUnavailable {
				t.Errorf("/readyz during the restore: %d %v, want 503", code, err)
			}
			if code, err := httpGet(l.Address(), "/healthz", waitTimeout); err != nil || code != http.StatusOK {
				t.Errorf("/healthz during the restore: %d %v, want 200", code, err)
			}
			close(loader.release)
			var startErr error
			select {
			case startErr = <-started:
			case <-time.After(waitTimeout):
				t.Fatal("Start did not return")
			}
			if fail != nil {
				if startErr == nil {
					t.Fatal("Start succeeded despite the failed restore")
				}
				// As start does on error: the listeners are closed.
				_ = l.Close()
				if code, err := get(300 * time.Millisecond); err == nil {
					t.Errorf("/readyz answered %d after a failed start", code)
				}
				return
			}
			if startErr != nil {
				t.Fatalf("Start: %v", startErr)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			deadline := time.Now().Add(waitTimeout)
			for {
				code, err := get(waitTimeout)
				if err == nil && code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz after Start: %d, %v; want 200", code, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// httpGet returns the status of GET path on addr.
func httpGet(addr, path string, timeout time.Duration) (int, error) {
	hc := &http.Client{Timeout: timeout}
	resp, err := hc.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
