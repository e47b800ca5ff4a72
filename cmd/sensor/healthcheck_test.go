package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The image's HEALTHCHECK runs `sensor healthcheck` with no flags and SENSOR_ADMIN_LISTEN=:9025:
// the variable must pick the address, a wildcard host must be reached on loopback, and
// --admin must still beat the variable.
func TestHealthcheckAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ready\n"))
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on: the listener is closed before the healthcheck dials it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "SENSOR_ADMIN_LISTEN" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want int
	}{
		{"env, wildcard host as in the image", nil, ":" + port, 0},
		{"env, 0.0.0.0", nil, "0.0.0.0:" + port, 0},
		{"env, loopback", nil, "127.0.0.1:" + port, 0},
		{"env names a dead port", nil, dead, 1},
		{"flag beats env", []string{"--admin", "127.0.0.1:" + port}, dead, 0},
		{"flag beats env, dead flag", []string{"--admin", dead}, ":" + port, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := healthcheck(tc.args, &stdout, &stderr, env(tc.env)); got != tc.want {
				t.Errorf("exit %d, want %d; stderr: %s", got, tc.want, stderr.String())
			}
		})
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		":9025":           "127.0.0.1:9025",
		"0.0.0.0:9025":    "127.0.0.1:9025",
		"[::]:9025":       "[::1]:9025",
		"10.1.2.3:9025":   "10.1.2.3:9025",
		"sensor.lan:9025": "sensor.lan:9025",
		"not an address":  "not an address",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
