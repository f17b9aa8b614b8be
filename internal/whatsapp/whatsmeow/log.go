package whatsmeow

import (
	"context"
	"fmt"
	"log/slog"

	waLog "go.mau.fi/whatsmeow/util/log"
)

// walogger writes whatsmeow's printf-style logs to slog, with the library's module path
// ("Client/Socket") as an attribute.
type walogger struct {
	log    *slog.Logger
	module string
}

func newWALogger(log *slog.Logger, module string) waLog.Logger {
	return walogger{log: log, module: module}
}

func (l walogger) Errorf(msg string, args ...any) { l.write(slog.LevelError, msg, args) }
func (l walogger) Warnf(msg string, args ...any)  { l.write(slog.LevelWarn, msg, args) }
func (l walogger) Infof(msg string, args ...any)  { l.write(slog.LevelInfo, msg, args) }
func (l walogger) Debugf(msg string, args ...any) { l.write(slog.LevelDebug, msg, args) }

func (l walogger) Sub(module string) waLog.Logger {
	return walogger{log: l.log, module: l.module + "/" + module}
}

func (l walogger) write(level slog.Level, msg string, args []any) {
	ctx := context.Background()
	// whatsmeow logs every frame at debug level: skip formatting what nobody reads.
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(msg, args...), "module", l.module)
}
