package control

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func serve(t *testing.T, h Handler) string {
	t.Helper()
	return serveAt(t, filepath.Join(t.TempDir(), SocketName), h)
}

func serveAt(t *testing.T, path string, h Handler) string {
	t.Helper()
	s, err := Listen(path, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return path
}

func TestAskGetsTheHandlersReply(t *testing.T) {
	var got Request
	path := serve(t, func(_ context.Context, r Request) Reply {
		got = r
		return Reply{Error: "routing.table changed"}
	})
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v, %v; want 0600", fi.Mode(), err)
	}
	r, err := Ask(context.Background(), path, Request{Op: OpReload, Config: "/etc/x.toml"})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Error != "routing.table changed" || got.Config != "/etc/x.toml" {
		t.Errorf("reply %+v, request seen %+v", r, got)
	}
}

func TestUnknownOpRefused(t *testing.T) {
	path := serve(t, func(context.Context, Request) Reply { return Reply{OK: true} })
	r, err := Ask(context.Background(), path, Request{Op: "frobnicate"})
	if err != nil || r.OK || r.Error == "" {
		t.Errorf("unknown op: %+v, %v; want a refusal", r, err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	s, err := Listen(path, func(context.Context, Request) Reply { return Reply{OK: true} }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.ln.SetUnlinkOnClose(false) // as a crash leaves it
	_ = s.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left: %v", err)
	}
	serveAt(t, path, func(context.Context, Request) Reply { return Reply{OK: true, Detail: "new"} })
	if r, err := Ask(context.Background(), path, Request{Op: OpReload}); err != nil || r.Detail != "new" {
		t.Errorf("after replacing the stale socket: %+v, %v", r, err)
	}
}

func TestRefusesARegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("Listen replaced a regular file")
	}
}

func TestAskWithoutDaemon(t *testing.T) {
	if _, err := Ask(context.Background(), filepath.Join(t.TempDir(), SocketName), Request{Op: OpReload}); err == nil {
		t.Error("Ask without a server succeeded")
	}
}
