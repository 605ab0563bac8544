package status

import (
	"log/slog"
	"testing"
)

// testLogger logs at debug level into the test output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
