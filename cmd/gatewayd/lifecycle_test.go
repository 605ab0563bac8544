package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/gateway"
)

// fakeService records its lifecycle in a shared journal; Serve blocks
// until Shutdown.
type fakeService struct {
	name      string
	j         *journal
	listenErr error
	serveErr  error
	serving   chan struct{} // closed when Serve runs
	stop      chan struct{}
}

func newFakeService(name string, j *journal) *fakeService {
	return &fakeService{name: name, j: j, serving: make(chan struct{}), stop: make(chan struct{})}
}

func (s *fakeService) Listen(context.Context) error {
	s.j.add(s.name + " listen")
	return s.listenErr
}

func (s *fakeService) Serve() error {
	if s.serveErr != nil {
		return s.serveErr
	}
	close(s.serving)
	<-s.stop
	return nil
}

func (s *fakeService) Shutdown(time.Duration) {
	s.j.add(s.name + " shutdown")
	close(s.stop)
}

// fakeFootprint is a footprint that records Install and Remove.
type fakeFootprint struct {
	j                     *journal
	installErr, removeErr error
}

func (f *fakeFootprint) Install(context.Context) error {
	f.j.add("install")
	return f.installErr
}

func (f *fakeFootprint) Remove() error {
	f.j.add("remove")
	return f.removeErr
}

type journal struct {
	mu sync.Mutex
	ev []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ev = append(j.ev, e)
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.ev, ", ")
}

func TestServeOrder(t *testing.T) {
	j := &journal{}
	a, b := newFakeService("a", j), newFakeService("b", j)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, &fakeFootprint{j: j}, []service{a, b}, 0, slog.New(slog.DiscardHandler)) }()
	for _, s := range []*fakeService{a, b} {
		select {
		case <-s.serving:
		case err := <-done:
			t.Fatalf("serve returned early: %v", err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if got, want := j.String(), "a listen, b listen, install, remove, a shutdown, b shutdown"; got != want {
		t.Errorf("lifecycle = %s, want %s", got, want)
	}
}

func TestServeListenFailureInstallsNothing(t *testing.T) {
	j := &journal{}
	a, b := newFakeService("a", j), newFakeService("b", j)
	b.listenErr = errors.New("address in use")
	err := serve(context.Background(), &fakeFootprint{j: j}, []service{a, b}, 0, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "opening listeners: address in use") {
		t.Fatalf("serve = %v", err)
	}
	if got, want := j.String(), "a listen, b listen, a shutdown"; got != want {
		t.Errorf("lifecycle = %s, want %s", got, want)
	}
}

func TestServeFailureRemovesFirst(t *testing.T) {
	j := &journal{}
	a := newFakeService("a", j)
	a.serveErr = errors.New("accept: boom")
	err := serve(context.Background(), &fakeFootprint{j: j}, []service{a}, 0, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "serving: accept: boom") {
		t.Fatalf("serve = %v", err)
	}
	if got, want := j.String(), "a listen, install, remove, a shutdown"; got != want {
		t.Errorf("lifecycle = %s, want %s", got, want)
	}
}

func TestServeInstallFailureShutsDown(t *testing.T) {
	j := &journal{}
	a := newFakeService("a", j)
	fp := &fakeFootprint{j: j, installErr: errors.New("installing IPv6 mangle table: no")}
	err := serve(context.Background(), fp, []service{a}, 0, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "installing IPv6 mangle table") {
		t.Fatalf("serve = %v", err)
	}
	if got, want := j.String(), "a listen, install, a shutdown"; got != want {
		t.Errorf("lifecycle = %s, want %s", got, want)
	}
}

// Only a failed removal tells the caller (the failsafe watchdog's owner)
// that interception may still be installed; the serve error is kept.
func TestServeReportsInterceptionLeft(t *testing.T) {
	j := &journal{}
	a := newFakeService("a", j)
	a.serveErr = errors.New("accept: boom")
	fp := &fakeFootprint{j: j, removeErr: fmt.Errorf("removing interception: %w", gateway.ErrInterceptionLeft)}
	err := serve(context.Background(), fp, []service{a}, 0, slog.New(slog.DiscardHandler))
	if !errors.Is(err, gateway.ErrInterceptionLeft) || !strings.Contains(err.Error(), "serving: accept: boom") {
		t.Fatalf("serve = %v, want the serve error and ErrInterceptionLeft", err)
	}
}
