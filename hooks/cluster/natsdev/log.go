package natsdev

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// levelTrace is the slog level of nats-server's trace lines (protocol
// traffic), below slog.LevelDebug so that a debug logger does not get them.
const levelTrace = slog.LevelDebug - 4

// serverLog is one embedded nats-server's logger. It routes the server's
// log through slog when there is a logger (notices at Info, warnings at
// Warn, errors and fatal errors at Error, debug lines at Debug, traces at
// levelTrace) and keeps the first fatal error, with which the server
// gives up on a listener or on JetStream, so that startNode can report
// it at once. A fatal error never exits the process.
type serverLog struct {
	l *slog.Logger // nil: silent

	mu    sync.Mutex
	fatal string
}

var _ server.Logger = (*serverLog)(nil)

// newServerLog returns srv's logger and gives it to srv, with the
// server's debug and trace output switched on only when l would keep it;
// name is srv's name, for l's lines.
func newServerLog(srv *server.Server, l *slog.Logger, name string) *serverLog {
	s := &serverLog{}
	debug, trace := false, false
	if l != nil {
		s.l = l.With("nats_server", name)
		ctx := context.Background()
		debug, trace = s.l.Enabled(ctx, slog.LevelDebug), s.l.Enabled(ctx, levelTrace)
	}
	srv.SetLoggerV2(s, debug, trace, false)
	return s
}

// fatalError returns the server's first fatal error, "" if none.
func (s *serverLog) fatalError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatal
}

func (s *serverLog) log(level slog.Level, format string, v []any) {
	if s.l == nil {
		return
	}
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	s.l.Log(ctx, level, fmt.Sprintf(format, v...))
}

// Noticef logs a notice at Info.
func (s *serverLog) Noticef(format string, v ...any) { s.log(slog.LevelInfo, format, v) }

// Warnf logs a warning at Warn.
func (s *serverLog) Warnf(format string, v ...any) { s.log(slog.LevelWarn, format, v) }

// Fatalf keeps the first fatal error and logs it at Error; the server,
// not the process, fails.
func (s *serverLog) Fatalf(format string, v ...any) {
	s.mu.Lock()
	if s.fatal == "" {
		s.fatal = fmt.Sprintf(format, v...)
	}
	s.mu.Unlock()
	s.log(slog.LevelError, format, v)
}

// Errorf logs an error at Error.
func (s *serverLog) Errorf(format string, v ...any) { s.log(slog.LevelError, format, v) }

// Debugf logs a debug line at Debug.
func (s *serverLog) Debugf(format string, v ...any) { s.log(slog.LevelDebug, format, v) }

// Tracef logs a protocol trace at levelTrace.
func (s *serverLog) Tracef(format string, v ...any) { s.log(levelTrace, format, v) }
