package testkit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Postfix is a private Postfix instance: nothing of the system's configuration, queue or log
// is used or touched.
type Postfix struct {
	dir string
}

// StartPostfix starts a private Postfix listening for SMTP on listen, relaying mail for
// each domain in routes to its host:port, and sending an always_bcc copy of every message to
// journal@sensor.test (route "sensor.test" to the sensor). extra is appended to main.cf.
// It is stopped, and its directory removed unless the test failed, when the test ends.
// Needs root (Postfix's daemons drop to the postfix user) and the postfix package.
func StartPostfix(t testing.TB, listen string, routes map[string]string, extra string) *Postfix {
	t.Helper()
	var transport []string
	for domain, addr := range routes {
		transport = append(transport, domain+"=smtp:["+strings.Replace(addr, ":", "]:", 1))
	}
	slices.Sort(transport)
	return startPostfix(t, listen, "transport_maps = inline:{ "+strings.Join(transport, ", ")+" }\n"+
		"always_bcc = journal@sensor.test\n"+extra)
}

// Milter is how a private Postfix consults a milter, as main.cf says it.
type Milter struct {
	// Addr is the milter's address in Postfix's terms: "inet:127.0.0.1:7357" or
	// "unix:/run/sensor/milter.sock".
	Addr string
	// DefaultAction is milter_default_action: accept, tempfail (Postfix's default) or reject.
	DefaultAction string
	// Timeout, when set, is milter_connect_timeout and milter_command_timeout; Postfix's
	// default of 30s each would let a test wait half a minute for a milter that hangs.
	Timeout time.Duration
}

// mainCF is the milter's main.cf lines. Protocol 6 is Postfix's default, spelled out so a
// change of default cannot change what the tests exercise; the macro lists stay Postfix's
// defaults, which docs/sources/postfix-milter.md says are enough.
func (m Milter) mainCF() string {
	s := "smtpd_milters = " + m.Addr + "\nmilter_protocol = 6\n"
	if m.DefaultAction != "" {
		s += "milter_default_action = " + m.DefaultAction + "\n"
	}
	if m.Timeout > 0 {
		s += fmt.Sprintf("milter_connect_timeout = %[1]ds\nmilter_command_timeout = %[1]ds\n", int(m.Timeout.Seconds()))
	}
	return s
}

// StartPostfixDiscard starts a private Postfix listening for SMTP on listen that takes mail
// for any recipient from loopback and delivers all of it to discard(8): the only copy the
// sensor gets is what the milter sees. With m nil no milter is consulted. extra is appended
// to main.cf. It ends with the test, as StartPostfix's does.
func StartPostfixDiscard(t testing.TB, listen string, m *Milter, extra string) *Postfix {
	t.Helper()
	conf := "default_transport = discard:delivered by the test's discard transport\n"
	if m != nil {
		conf += m.mainCF()
	}
	return startPostfix(t, listen, conf+extra)
}

// startPostfix writes a private Postfix's configuration, main.cf's common lines then
// mainExtra, and starts it.
func startPostfix(t testing.TB, listen, mainExtra string) *Postfix {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("a private Postfix must be started as root (its daemons drop to the postfix user)")
	}
	// Not t.TempDir: Postfix's daemons run as the postfix user and must reach the queue, and
	// the test's temp directory is private to root.
	dir, err := os.MkdirTemp("", "sensor-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pf := &Postfix{dir: dir}
	conf := filepath.Join(dir, "conf")
	for _, d := range []string{conf, filepath.Join(dir, "queue")} { // postfix makes the queue's subdirectories
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = gw.test
mydomain = gw.test
myorigin = gw.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
smtpd_tls_security_level = none
smtp_tls_security_level = none
# Next hops are looked up as the machine does (/etc/hosts), not in DNS, which a test machine
# may not have.
smtp_host_lookup = native
# Send long lines as they are: the sensor must take them whole.
smtp_line_length_limit = 0
message_size_limit = 52428800
`, dir) + mainExtra
	masterCF := listen + ` inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`
	for name, data := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("postfix", "-c", conf, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix -c %s start: %v\n%s\n%s", conf, err, out, pf.Maillog(t))
	}
	t.Cleanup(func() {
		// A wedged instance (its postlogd stuck, so every process that logs blocks) must not
		// hold the whole suite until go test's timeout: stop gets 30 s, then the master and
		// its children are killed.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "postfix", "-c", conf, "stop").CombinedOutput(); err != nil {
			t.Errorf("postfix stop: %v\n%s", err, out)
			if pid, err := os.ReadFile(filepath.Join(dir, "queue", "pid", "master.pid")); err == nil {
				if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
					_ = syscall.Kill(-n, syscall.SIGKILL) // its process group: master and children
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
		if t.Failed() {
			t.Logf("Postfix's files are kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	WaitListening(t, listen)
	return pf
}

// Maillog returns Postfix's log so far.
func (pf *Postfix) Maillog(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pf.dir, "maillog"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// Queued lists the messages still in Postfix's queues.
func (pf *Postfix) Queued(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold", "corrupt"} {
		_ = filepath.WalkDir(filepath.Join(pf.dir, "queue", q), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, strings.TrimPrefix(path, pf.dir+"/"))
			}
			return nil
		})
	}
	return files
}

// WaitQueueEmpty fails the test if Postfix still holds a message after timeout.
func (pf *Postfix) WaitQueueEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		q := pf.Queued(t)
		if len(q) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postfix's queue still holds %v after %s:\n%s", q, timeout, LastLines(pf.Maillog(t), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitListening waits until something accepts TCP connections on addr.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a loopback address with a port nothing listens on at the moment, for a
// server started as a separate process.
//
// Asking the kernel for port 0 and closing the listener used to be how: but then the same
// port can come back from the next call, or be taken as the local port of an outgoing
// connection before the server binds it, and a gateway test once relayed to its own Postfix
// instead of its smtp-sink that way. So ports come from below the kernel's ephemeral range
// (which starts at 32768 by default: bind(0) and outgoing connections never use them), in
// turn from a random start, and each one is checked free before it is handed out. The turn
// is the one piece of package state: it is what makes two calls in one test binary differ.
func FreePort(t testing.TB) string {
	t.Helper()
	for range portSpan {
		p := ports.nextPort()
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // in use; try the next
		}
		addr := l.Addr().String()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	t.Fatalf("no free loopback port in %d..%d", portBase, portBase+portSpan-1)
	return ""
}

const portBase, portSpan = 20000, 12000

// portTurn hands out ports in turn from a random start, so that test binaries run one after
// another (or by two people) do not start on the same port.
type portTurn struct {
	mu   sync.Mutex
	next int
	init bool
}

func (p *portTurn) nextPort() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.init {
		p.next, p.init = rand.IntN(portSpan), true
	}
	port := portBase + p.next
	p.next = (p.next + 1) % portSpan
	return port
}

var ports portTurn

// ConfigDir is the private Postfix's config_directory, for its command-line tools
// (sendmail -C, postqueue -c).
func (pf *Postfix) ConfigDir() string { return filepath.Join(pf.dir, "conf") }
