package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
)

// logWriter takes go-plugin's log lines (hclog JSON: its own, and the
// plugin's stderr lines it passes on) and writes them to the broker's
// slog logger, at their level, with their fields.
type logWriter struct {
	log func() *slog.Logger // the hook's logger, named once the plugin described itself
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err != nil {
			w.buf.Write(line) // incomplete: keep for the next write
			return len(p), nil
		}
		w.line(bytes.TrimSpace(line))
	}
}

// line logs one hclog JSON line; anything else is logged as text.
func (w *logWriter) line(b []byte) {
	if len(b) == 0 {
		return
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.log().Info(string(b), "source", "plugin")
		return
	}
	msg, _ := m["@message"].(string)
	lv, _ := m["@level"].(string)
	delete(m, "@message")
	delete(m, "@level")
	delete(m, "@timestamp")
	delete(m, "@module")
	delete(m, "timestamp")
	level := slog.LevelInfo
	switch lv {
	case "trace", "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	attrs := make([]any, 0, 2*len(m))
	for k, v := range m {
		attrs = append(attrs, k, v)
	}
	w.log().Log(context.Background(), level, msg, attrs...)
}
