package netlab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is a background process started in a namespace with NS.Start.
type Proc struct {
	Cmd *exec.Cmd

	name     string        // program name, for messages
	done     chan struct{} // closed when Cmd.Wait has returned
	err      error         // Cmd.Wait's result, valid after done
	killOnce sync.Once
}

// Start starts name with args in the background inside the namespace, with
// stdout and stderr written to logw (discarded if nil). The process runs in
// its own process group, gets SIGKILL if this process dies
// (PR_SET_PDEATHSIG), is killed when ctx is done, and is killed by
// Lab.Close. Use Signal/Wait for a graceful stop and Kill otherwise.
//
// The parent-death signal is tied to the OS thread that calls Start (a Linux
// property); do not call Start from a goroutine that exits while locked to
// its thread.
func (n *NS) Start(ctx context.Context, logw io.Writer, name string, args ...string) (*Proc, error) {
	cmd := n.Command(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = 2 * time.Second // bound log copying after exit
	p := &Proc{Cmd: cmd, name: name, done: make(chan struct{})}
	if !n.track(p) {
		return nil, fmt.Errorf("netns %s: Start %s: lab is closed", n.Name, name)
	}
	if err := cmd.Start(); err != nil {
		close(p.done)
		return nil, fmt.Errorf("netns %s: start %s: %w", n.Name, name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id (the process runs the program itself, since
// `ip netns exec` execs it without forking).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process (not to its group).
func (p *Proc) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	return p.Cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for exit status 0). It returns an error if the process is still
// running after timeout; the process is left running in that case.
func (p *Proc) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return fmt.Errorf("netlab: %s (pid %d) did not exit within %v", p.name, p.Pid(), timeout)
	}
}

// Kill SIGKILLs the process group and reaps the process. It is safe to call
// more than once and after the process has exited.
func (p *Proc) Kill() {
	p.killOnce.Do(func() {
		if p.Cmd.Process == nil {
			return
		}
		select {
		case <-p.done:
		default:
			_ = killGroup(p.Cmd.Process.Pid)
		}
	})
	<-p.done
}

// killGroup SIGKILLs the process group led by pid (Start sets Setpgid, so
// the group id is the pid of the process we started).
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}
