package sensor

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"
)

// ParseMilterAddr reads --milter-listen: "unix:/path/to.sock", "tcp:host:port" (also
// "inet:host:port", as Postfix's smtpd_milters spells it) or "host:port".
func ParseMilterAddr(spec string) (network, addr string, err error) {
	network, addr = "tcp", spec
	switch {
	case strings.HasPrefix(spec, "unix:"):
		network, addr = "unix", strings.TrimPrefix(spec, "unix:")
		if addr == "" {
			return "", "", errors.New("unix: needs a socket path, such as unix:/run/sensor/milter.sock")
		}
		if !strings.HasPrefix(addr, "/") {
			return "", "", fmt.Errorf("socket path %q is relative; write an absolute path, such as unix:/run/sensor/milter.sock", addr)
		}
		return network, addr, nil
	case strings.HasPrefix(spec, "tcp:"):
		addr = strings.TrimPrefix(spec, "tcp:")
	case strings.HasPrefix(spec, "inet:"):
		addr = strings.TrimPrefix(spec, "inet:")
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return "", "", fmt.Errorf("%q is not host:port; write tcp:127.0.0.1:7357, 127.0.0.1:7357 or unix:/run/sensor/milter.sock", spec)
	}
	return network, addr, nil
}

// ListenMilter opens the milter listener of spec (ParseMilterAddr). A unix socket gets mode
// (group rw for Postfix, 0660, is the usual); a socket file left by a sensor that died is
// removed first, but only when nothing answers on it: two sensors must not steal each other's
// socket. The socket file goes when the listener is closed.
func ListenMilter(spec string, mode fs.FileMode) (net.Listener, error) {
	network, addr, err := ParseMilterAddr(spec)
	if err != nil {
		return nil, err
	}
	if network == "tcp" {
		return net.Listen("tcp", addr)
	}
	if fi, err := os.Lstat(addr); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another path", addr)
		}
		if c, err := net.DialTimeout("unix", addr, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process listens on it (a sensor already running?)", addr)
		}
		if err := os.Remove(addr); err != nil {
			return nil, fmt.Errorf("removing the stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", addr)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(addr, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the socket's mode: %w", err)
	}
	return l, nil
}
