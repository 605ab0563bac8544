package watchdog

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"
)

// The process tests re-run this test binary as a watchdog (and as a
// daemon that starts one), chosen by helperEnv.
const (
	helperEnv = "GWD_WATCHDOG_TEST_HELPER" // watchdog, daemon, fail, hang
	markerEnv = "GWD_WATCHDOG_TEST_MARKER" // file the helper watchdog records events in
)

// helperFailCode is the exit status of the "fail" helper.
const helperFailCode = 3

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "watchdog":
		os.Exit(helperWatchdog())
	case "daemon":
		os.Exit(helperDaemon())
	case "fail":
		fmt.Fprintln(os.Stderr, "helper: config broken")
		os.Exit(helperFailCode)
	case "hang":
		time.Sleep(time.Hour)
	}
	os.Exit(100)
}

// record appends an event line to the marker file.
func record(event string) error {
	f, err := os.OpenFile(os.Getenv(markerEnv), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, event)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// helperWatchdog is what `gatewayd watchdog` does, with a cleanup that
// records itself instead of touching the kernel.
func helperWatchdog() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	control, ready, err := ChildPipes()
	if err != nil {
		log.Error("helper", "err", err)
		return 2
	}
	defer ShieldSignals(log)()
	pol := Policy{FailOpen: true, Cleanup: func() error { return record("cleanup") }}
	w := &Watcher{Log: log, Policy: pol, Reload: func() (Policy, error) { return pol, record("reload") }}
	if err := SignalReady(ready); err != nil {
		log.Error("helper", "err", err)
		return 2
	}
	if err := w.Run(control); err != nil {
		return 1
	}
	return 0
}

// helperDaemon starts a watchdog, prints its pid and waits to be killed.
func helperDaemon() int {
	os.Setenv(helperEnv, "watchdog")
	h, err := Start(Options{Args: []string{"watchdog-helper"}, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("%d\n", h.Pid())
	time.Sleep(time.Hour) // until the test kills it
	return 0
}
