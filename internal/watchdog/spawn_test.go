package watchdog

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// procGuard bounds every wait for another process in these tests; a hang
// fails the test rather than timing it out. Not a measurement.
const procGuard = 10 * time.Second

// startWatchdog starts this test binary as a watchdog whose cleanup and
// reloads are recorded in the returned marker file.
func startWatchdog(t *testing.T, o Options) (h *Handle, marker string, logs *logBuf) {
	t.Helper()
	marker = filepath.Join(t.TempDir(), "events")
	t.Setenv(helperEnv, "watchdog")
	t.Setenv(markerEnv, marker)
	logs = &logBuf{}
	o.Args = []string{"watchdog-helper"}
	o.Stderr = logs
	o.Log, _ = testLog(t)
	h, err := Start(o)
	if err != nil {
		t.Fatalf("Start: %v\nwatchdog stderr:\n%s", err, logs)
	}
	t.Cleanup(func() { h.Exit(true) })
	return h, marker, logs
}

// events returns the marker file's lines.
func events(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile(marker)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// waitFor polls cond until it holds or procGuard passes.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > procGuard {
			t.Fatalf("%s: not within %v", what, procGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// gone reports whether pid has exited (a zombie counts: an orphan's reaper
// may be slow, or absent in a container).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// fdTargets lists a process's descriptors and what they point to.
func fdTargets(t *testing.T, pid int) map[int]string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]string{}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		m[fd], _ = os.Readlink(filepath.Join(dir, e.Name()))
	}
	return m
}

// leakSocket opens a listening socket whose descriptor is not
// close-on-exec, as a sloppy parent of the daemon might hand down.
func leakSocket(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { _, ferr = unix.FcntlInt(fd, unix.F_SETFD, 0) }); err != nil || ferr != nil {
		t.Fatalf("clearing FD_CLOEXEC: %v %v", err, ferr)
	}
}

// TestCleanExitIsQuiet: the watchdog runs in its own session with only the
// pipe and stdio, shrugs off SIGTERM, follows reloads, and on MsgCleanExit
// exits at once without cleaning up.
func TestCleanExitIsQuiet(t *testing.T) {
	leakSocket(t)
	h, marker, logs := startWatchdog(t, Options{})
	pid := h.Pid()
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("watchdog session = %d (%v), want its own (%d)", sid, err, pid)
	}
	fds := fdTargets(t, pid)
	for fd, target := range fds {
		if fd > ControlFD && !strings.HasPrefix(target, "anon_inode:") {
			t.Errorf("watchdog holds descriptor %d -> %s; want only 0-2 and the control pipe", fd, target)
		}
	}
	if !strings.HasPrefix(fds[ControlFD], "pipe:") {
		t.Errorf("descriptor %d = %q, want the control pipe", ControlFD, fds[ControlFD])
	}

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGTERM logged", func() bool { return strings.Contains(logs.String(), "ignoring signal") })
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload recorded", func() bool { return slices.Contains(events(t, marker), "reload") })
	if gone(pid) {
		t.Fatal("watchdog exited on SIGTERM")
	}

	start := time.Now()
	h.Exit(true)
	if !gone(pid) {
		t.Error("watchdog still running after Exit(true)")
	}
	t.Logf("clean exit: watchdog gone %v after Exit", time.Since(start))
	if ev := events(t, marker); slices.Contains(ev, "cleanup") {
		t.Errorf("clean exit ran the cleanup: %v", ev)
	}
	if err := h.cur.err; err != nil {
		t.Errorf("watchdog exit status: %v\n%s", err, logs)
	}
}

// TestErrorExitHandsOverCleanup: Exit(false) closes the pipe without the
// clean byte and returns once the watchdog has cleaned up.
func TestErrorExitHandsOverCleanup(t *testing.T) {
	h, marker, logs := startWatchdog(t, Options{})
	h.Exit(false)
	if ev := events(t, marker); !slices.Equal(ev, []string{"cleanup"}) {
		t.Errorf("events after Exit(false) = %v, want [cleanup]\n%s", ev, logs)
	}
	if !strings.Contains(logs.String(), "gatewayd exited unexpectedly, removing interception") {
		t.Errorf("watchdog log:\n%s", logs)
	}
	h.Exit(true) // later calls do nothing
}

// TestDaemonKilledWatchdogCleansUp: SIGKILL to the whole process group of
// a daemon that started a watchdog; the watchdog, in its own session,
// survives it, cleans up and exits.
func TestDaemonKilledWatchdogCleansUp(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "events")
	logs := &logBuf{}
	cmd := exec.Command(SelfExe)
	cmd.Env = append(os.Environ(), helperEnv+"=daemon", markerEnv+"="+marker)
	cmd.Stderr = logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = procGuard
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	wpid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("reading the watchdog pid: %q %v %v\n%s", line, err, perr, logs)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "cleanup after the daemon's death", func() bool { return slices.Contains(events(t, marker), "cleanup") })
	t.Logf("cleanup ran %v after SIGKILL", took)
	waitFor(t, "watchdog exit", func() bool { return gone(wpid) })
	_ = cmd.Wait()
	if !strings.Contains(logs.String(), "gatewayd exited unexpectedly") {
		t.Errorf("watchdog log:\n%s", logs)
	}
}

func TestStartFailures(t *testing.T) {
	t.Setenv(helperEnv, "fail")
	_, err := Start(Options{Args: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("watchdog failing at start: %v", err)
	}
	t.Setenv(helperEnv, "hang")
	start := time.Now()
	_, err = Start(Options{Args: []string{"x"}, ReadyTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "not ready within") || !strings.Contains(err.Error(), "killed") {
		t.Errorf("watchdog never ready: %v", err)
	}
	if d := time.Since(start); d > procGuard {
		t.Errorf("Start took %v with a 200ms ready timeout", d)
	}
	if _, err := Start(Options{}); err == nil {
		t.Error("Start without arguments: no error")
	}
}

// TestNotStartedByDaemon: run by hand, without the pipes, the watchdog
// refuses to start instead of guarding nothing.
func TestNotStartedByDaemon(t *testing.T) {
	cmd := exec.Command(SelfExe)
	cmd.Env = append(os.Environ(), helperEnv+"=watchdog", markerEnv+"="+filepath.Join(t.TempDir(), "events"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "not the watchdog's pipe") {
		t.Errorf("watchdog without pipes: %v\n%s", err, out)
	}
}

// TestRespawn: a watchdog killed while the daemon runs is replaced.
func TestRespawn(t *testing.T) {
	h, marker, _ := startWatchdog(t, Options{RespawnDelay: 10 * time.Millisecond})
	first := h.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "respawn", func() bool { return h.Pid() != first })
	second := h.Pid()
	if err := h.Reload(); err != nil { // the new one listens
		t.Fatal(err)
	}
	waitFor(t, "reload by the new watchdog", func() bool { return slices.Contains(events(t, marker), "reload") })
	h.Exit(true)
	if !gone(second) {
		t.Error("respawned watchdog still running after Exit(true)")
	}
	if ev := events(t, marker); slices.Contains(ev, "cleanup") {
		t.Errorf("a killed watchdog or a clean exit ran the cleanup: %v", ev)
	}
}
