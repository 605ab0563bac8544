// Package watchdog keeps a dead gatewayd from leaving a dead LAN.
//
// Right after loading its config and before installing anything, the
// daemon starts a small watchdog process from its own binary (Start, on
// /proc/self/exe) and keeps the write end of a pipe to it. Nothing else
// holds that end: os.Pipe opens it O_CLOEXEC, so neither the exec'd
// iptables nor the watchdog inherit it. The watchdog blocks reading the
// pipe (Watcher.Run):
//
//   - the byte MsgCleanExit means "I removed my interception myself": the
//     watchdog exits quietly;
//   - the byte MsgReload means "the config changed": it re-reads it;
//   - end of file without MsgCleanExit means the daemon is gone, by any
//     means (crash, panic, SIGKILL, OOM kill): the kernel closed the write
//     end with the rest of its files. In fail-open mode the watchdog then
//     removes the interception, as `gatewayd cleanup` would, and exits; in
//     fail-closed mode it only logs.
//
// The watchdog runs in its own session (setsid), so a SIGKILL to the
// daemon's process group or a Ctrl-C on its terminal does not take it
// down too, and it ignores SIGTERM, SIGINT, SIGHUP and SIGPIPE while it
// waits (ShieldSignals): an init system that signals the whole service
// at once must not stop it before it has cleaned up, and a closed stderr
// must not kill it. It has no PR_SET_PDEATHSIG: that would kill it exactly
// when it is needed. It still never outlives the daemon by more than its
// cleanup, because the daemon's death is what ends its wait. It keeps no
// file descriptors of the daemon's but the pipe and stdio (ChildPipes
// closes anything else inherited).
//
// The state-dir lock (Lock) orders the processes that change gatewayd's
// rules: the running daemon holds it for its lifetime; the watchdog takes
// it before cleaning up, so a daemon restarted at once (procd, systemd
// Restart=) waits for the cleanup instead of having its fresh rules
// removed under it; and a watchdog that finds the lock taken by a newer
// gatewayd leaves the rules alone, since that daemon cleaned up the old
// run's at start.
package watchdog
