// Command vanemq-audit is a vanemq plugin that appends every message
// published to the broker to a file, one JSON object a line:
//
//	{"time":"2026-12-01T10:00:00.123456789Z","client_id":"sensor-1","username":"alice","topic":"sensors/1/temp","qos":1,"retain":false,"payload":"21.5"}
//
// The payload is "payload", a string, when it is valid UTF-8, and
// "payload_base64" otherwise. It observes the "published" event: the
// broker never waits for it, and a slow disk cannot slow clients down
// (events it does not take in time are dropped and counted, see
// docs/plugins.md).
//
// The broker runs it as a separate process (hook "plugin"). Its config
// block:
//
//	config:
//	  file: audit.jsonl        # appended to, created if missing (mode 0640)
//	  topics: ["sensors/#"]    # optional: only these topic filters
//	  flush_interval: 0s       # optional; see below
//
// A relative file is relative to the broker's working directory.
//
// Lines go through a buffer. With flush_interval 0 (the default) it is
// flushed after every event: one write(2) a message, and nothing the
// plugin has received is lost when it stops or is killed. With
// flush_interval above 0 (e.g. 100ms) it is flushed that often: fewer
// writes under load. The plugin also observes the "stopped" event, the
// broker's last, and flushes on it: a broker that stops cleanly loses no
// line either way, and a plugin killed (or a broker killed) between two
// flushes loses up to flush_interval of the latest lines.
//
// Build: go build -o bin/vanemq-audit ./examples/plugin/audit
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vanemq/vanemq/plugins/sdk"
)

// config is the plugin's config block.
type config struct {
	// File is the audit file, appended to.
	File string `json:"file"`
	// Topics, when not empty, limits the audit to these topic filters.
	Topics []string `json:"topics"`
	// FlushInterval is how often the buffer is flushed, as a duration
	// ("100ms"); "" or "0s": after every event.
	FlushInterval string `json:"flush_interval"`
}

// line is one audit line.
type line struct {
	Time          string `json:"time"`
	ClientID      string `json:"client_id"`
	Username      string `json:"username"`
	Topic         string `json:"topic"`
	QoS           byte   `json:"qos"`
	Retain        bool   `json:"retain"`
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
}

// auditPlugin is the plugin.
type auditPlugin struct {
	sdk.Base

	mu      sync.Mutex // guards what follows
	log     *slog.Logger
	f       *os.File
	w       *bufio.Writer
	each    bool  // flush after every event
	failed  int64 // failed writes since the last one logged
	lastErr time.Time
}

// Init opens the audit file and says that the plugin observes published
// messages, on the configured topics.
func (p *auditPlugin) Init(_ context.Context, req sdk.InitRequest) (sdk.Description, error) {
	var cfg config
	if err := req.Decode(&cfg); err != nil {
		return sdk.Description{}, err
	}
	if cfg.File == "" {
		return sdk.Description{}, errors.New("file: required: the audit file")
	}
	var interval time.Duration
	if cfg.FlushInterval != "" {
		d, err := time.ParseDuration(cfg.FlushInterval)
		if err != nil || d < 0 || d > time.Minute {
			return sdk.Description{}, fmt.Errorf("flush_interval: %q is not a duration from 0s to 1m", cfg.FlushInterval)
		}
		interval = d
	}
	// Absolute, so that errors and the log say which file it is.
	path, err := filepath.Abs(cfg.File)
	if err != nil {
		return sdk.Description{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return sdk.Description{}, fmt.Errorf("audit file: %w", err)
	}
	log := sdk.Logger()
	p.mu.Lock()
	p.log, p.f, p.w, p.each = log, f, bufio.NewWriterSize(f, 64<<10), interval == 0
	p.mu.Unlock()
	if interval > 0 {
		go p.flushEvery(interval)
	}
	log.Info("auditing published messages", "file", path, "topics", cfg.Topics, "flush_interval", interval.String())
	return sdk.Description{Name: "audit", Handlers: []sdk.Handler{
		{Event: sdk.EventPublished, Mode: sdk.ModeObserver, Topics: cfg.Topics},
		{Event: sdk.EventStopped, Mode: sdk.ModeObserver},
	}}, nil
}

// Observe appends a published message to the file, and flushes the
// buffer when the broker stops. Events come in order, one at a time.
func (p *auditPlugin) Observe(_ context.Context, e *sdk.Event) {
	if e.Kind == sdk.EventStopped {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.w.Buffered() > 0 {
			p.wrote(p.w.Flush())
		}
		return
	}
	if e.Kind != sdk.EventPublished || e.Msg == nil {
		return
	}
	l := line{Time: e.Time.UTC().Format(time.RFC3339Nano), ClientID: e.Msg.Origin, Topic: e.Msg.Topic,
		QoS: e.Msg.QoS, Retain: e.Msg.Retain}
	if e.Client != nil {
		l.ClientID, l.Username = e.Client.ID, e.Client.Username
	}
	if utf8.Valid(e.Msg.Payload) {
		l.Payload = string(e.Msg.Payload)
	} else {
		l.PayloadBase64 = base64.StdEncoding.EncodeToString(e.Msg.Payload)
	}
	b, err := json.Marshal(&l)
	if err != nil { // cannot happen: strings and numbers only
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err = p.w.Write(append(b, '\n'))
	if err == nil && p.each {
		err = p.w.Flush()
	}
	p.wrote(err)
}

// flushEvery flushes the buffer every interval, for the plugin's life.
func (p *auditPlugin) flushEvery(interval time.Duration) {
	for range time.Tick(interval) {
		p.mu.Lock()
		if p.w.Buffered() > 0 {
			p.wrote(p.w.Flush())
		}
		p.mu.Unlock()
	}
}

// wrote handles the result of a write or flush (p.mu held): a failure
// loses what the buffer held, and is logged at most once a second with
// the number of failures since the last line.
func (p *auditPlugin) wrote(err error) {
	if err == nil {
		return
	}
	p.failed++
	if time.Since(p.lastErr) >= time.Second {
		p.log.Error("writing the audit file failed; the buffered lines are lost", "cause", err, "failures", p.failed)
		p.lastErr, p.failed = time.Now(), 0
	}
	// A bufio.Writer keeps its first error for good: start afresh on the
	// same file, so that writing resumes when the disk has room again.
	p.w.Reset(p.f)
}

func main() { sdk.Serve(&auditPlugin{}) }
