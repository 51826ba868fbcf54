package main

// What an operator sees when the server cannot start.

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A port already taken: the server says so and exits 1, without claiming
// to drain (it logged "draining: /readyz answers 503" before the error).
func TestRunListenFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, []string{"-addr", taken.Addr().String(), "-client-dir", sioFakeBundle(t)}, confEnv(nil), &out, &errOut)
	all := out.String() + errOut.String()
	if code != exitFailed || !strings.Contains(all, "address already in use") {
		t.Errorf("exit %d, want %d naming the address in use:\n%s", code, exitFailed, all)
	}
	if strings.Contains(all, "draining") || strings.Contains(all, "Server started") {
		t.Errorf("a server that never listened logged a start or a drain:\n%s", all)
	}
}

// Start-up refusals that are the operator's settings: exit 2 and a message
// that says what to do.
func TestRunRefusesBadSetup(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"missing -public", []string{"-public", filepath.Join(t.TempDir(), "www")}, nil, []string{"-public", "no such directory", "repository's root"}},
		{"-history mysql://", []string{"-history", "mysql://root:pw@127.0.0.1/chat"}, nil, []string{"-history mysql://", "postgres://"}},
		{"-admin-user without -admin-ui", []string{"-admin-user", "admin"}, nil, []string{"-admin-user", "-admin-ui"}},
		{"ADMIN_PASSWORD_HASH without ADMIN_UI", nil, map[string]string{"ADMIN_PASSWORD_HASH": "$2a$10$x"}, []string{"-admin-password-hash", "-admin-ui"}},
		{"hash eaten by a shell", []string{"-admin-ui", "-admin-user", "admin", "-admin-password-hash", "a0"},
			map[string]string{"ADMIN_UI_DIR": "node_modules/@socket.io/admin-ui/ui/dist"}, []string{"-admin-password-hash", "single quotes"}},
		{"-allowed-hosts with a scheme", []string{"-allowed-hosts", "https://chat.example.com"}, nil, []string{"-allowed-hosts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"-addr", "127.0.0.1:0", "-client-dir", sioFakeBundle(t)}, tc.args...)
			code := run(ctx, args, confEnv(tc.env), &out, &errOut)
			all := out.String() + errOut.String()
			if code != exitUsage {
				t.Errorf("exit %d, want %d:\n%s", code, exitUsage, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output does not mention %q:\n%s", w, all)
				}
			}
			if strings.Contains(all, "pw@") || strings.Contains(all, "Server started") {
				t.Errorf("a password shown, or the server started:\n%s", all)
			}
		})
	}
}
