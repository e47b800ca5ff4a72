package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/journalsensor/sensor/access"
	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/enforce"
	"github.com/journalsensor/sensor/parser"
	"github.com/journalsensor/sensor/sensor"
	"github.com/journalsensor/sensor/spool"
	"github.com/journalsensor/sensor/uploader"
)

// serveConfig is everything `sensor serve` takes, after layering flags, env and file.
type serveConfig struct {
	configFile        string
	smtpListen        string
	adminListen       string
	adminTokenFile    string
	dataDir           string
	pipelineURL       string
	pipelineTokenFile string
	pipelineCAFile    string
	clientCertFile    string
	clientKeyFile     string
	attachments       string
	urls              onOff
	maxMessageBytes   byteSize
	spoolMaxBytes     byteSize
	idleTimeout       time.Duration
	maxTxnTime        time.Duration
	maxConns          int
	maxConnsPerIP     int
	journalAddresses  listFlag
	shutdownTimeout   time.Duration
	maxAge            time.Duration
	logFormat         string
	logLevel          string
	tlsCert           string
	tlsKey            string
	smtpsListen       string
	requireTLS        bool
	m365Tenants       listFlag
	sourceHeader      string
	sourceSecretFile  string
	tlsClientCA       string
	tlsClientNames    listFlag
	allowCIDRs        listFlag
	milterListen      string
	milterSocketMode  string
	milterOnFault     string
	milterTimeout     time.Duration
	milterAddHeader   bool
	enf               enforceConfig

	// From the config file's structuredKeys, set by loadServeConfig.
	accessNode  *yaml.Node // the value of the key access; nil when absent
	accessFile  string     // the config file that holds it
	accessWhere string     // `FILE:LINE: key "access"`

	// Derived by check.
	mode        parser.AttachmentMode
	token       string
	recipients  *sensor.Recipients // nil: every recipient
	adminToken  string
	origin      *sensor.Origin // nil: no header proof of origin
	access      *access.Table  // nil: every client accepted, in no group
	milterMode  fs.FileMode
	milterFault sensor.MilterFault
}

func serveFlags(c *serveConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sensor serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.configFile, "config", "",
		"YAML config file; its keys are spelled like these flags (smtp-listen: \":2525\"), and access: is the host access table (see the README)")
	fs.StringVar(&c.smtpListen, "smtp-listen", "127.0.0.1:2525", "SMTP address the journal rule delivers to")
	fs.StringVar(&c.adminListen, "admin-listen", "127.0.0.1:9025", "address for /healthz, /readyz, /metrics and /status")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "",
		"file holding a bearer token that /metrics and /status then require (/healthz and /readyz stay open)")
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir, "directory for the spool and the default outbox")
	fs.StringVar(&c.pipelineURL, "pipeline-url", "", "https://... scoring pipeline, or file://DIR (default file://<data-dir>/outbox)")
	fs.StringVar(&c.pipelineTokenFile, "pipeline-token-file", "", "file holding the pipeline's bearer token")
	fs.StringVar(&c.pipelineCAFile, "pipeline-ca-file", "", "PEM bundle of the CAs that sign the pipeline's certificate (default: system roots)")
	fs.StringVar(&c.clientCertFile, "pipeline-client-cert", "", "client certificate for mutual TLS with the pipeline")
	fs.StringVar(&c.clientKeyFile, "pipeline-client-key", "", "key of --pipeline-client-cert")
	fs.StringVar(&c.attachments, "attachments", "metadata", "off, metadata (hashes, types, sizes) or content (also upload the bytes as blobs)")
	c.urls = true
	fs.Var(&c.urls, "urls", "extract URLs: on or off")
	c.maxMessageBytes = 200 << 20
	fs.Var(&c.maxMessageBytes, "max-message-bytes", "largest message accepted (SIZE); bigger ones get 552 5.3.4")
	// DESIGN.md's default: a pipeline outage must fill the spool's budget, not the disk.
	c.spoolMaxBytes = 10 << 30
	fs.Var(&c.spoolMaxBytes, "spool-max-bytes", "spool budget; past it new messages get 452 4.3.1 until uploads drain it (0: none)")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 5*time.Minute, "close a connection that sends nothing for this long")
	fs.DurationVar(&c.maxTxnTime, "max-transaction-time", 30*time.Minute,
		"a transaction (MAIL to the reply to its message) that takes longer ends with 451 4.4.2 and no record")
	fs.IntVar(&c.maxConns, "max-connections", 1000, "SMTP connections open at once, in all; past it a new one is greeted 421 4.7.0 and closed")
	fs.IntVar(&c.maxConnsPerIP, "max-connections-per-ip", 100,
		"SMTP connections open at once from one client address; past it a new one is greeted 421 4.7.0 and closed")
	fs.Var(&c.allowCIDRs, "allow-cidr",
		"accept SMTP only from this address range, such as 192.0.2.0/24 (repeatable; in the environment, comma-separated); other clients are greeted 554 5.7.1. "+
			"The shortcut of the config file's access table, which it cannot be combined with (default: every address)")
	fs.Var(&c.journalAddresses, "journal-address",
		"accept RCPT TO only for this address, local@domain or *@domain (repeatable; in the environment, comma-separated); others get 550 5.1.1 (default: every address)")
	fs.DurationVar(&c.maxAge, "max-age", 7*24*time.Hour,
		"records undeliverable for longer go to the spool's deadletter/ folder (never deleted)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second,
		"on SIGTERM, how long messages already being received may take to finish (uploads then get 10s more)")
	// TLS on the SMTP door.
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate (chain) for STARTTLS and --smtps-listen; reloaded on SIGHUP and when the file changes")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	fs.StringVar(&c.smtpsListen, "smtps-listen", "", "implicit-TLS SMTP address (RFC 8314), such as :465; needs --tls-cert (default off)")
	fs.BoolVar(&c.requireTLS, "require-tls", false, "answer MAIL before STARTTLS with 451 4.7.0 (the sender keeps the copy and retries); needs --tls-cert")
	// Proof of origin from the copy's own header (docs/sources/).
	fs.Var(&c.m365Tenants, "m365-tenant",
		"pin a Microsoft 365 tenant by its initial domain (contoso.onmicrosoft.com) or tenant id (a GUID): a copy must name it in its outer X-OriginatorOrg / X-MS-Exchange-CrossTenant-Id, or get 550 5.7.1 (repeatable; in the environment, comma-separated)")
	fs.StringVar(&c.sourceHeader, "source-header", "",
		"name of a header your routing rule or gateway adds to each copy with a secret: a copy must carry it, or get 550 5.7.1; the header is never recorded (needs --source-header-secret-file)")
	fs.StringVar(&c.sourceSecretFile, "source-header-secret-file", "",
		"file holding the --source-header value: at least 16 letters, digits or -._~+/= (openssl rand -hex 32 makes one)")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "",
		"PEM bundle of the CAs that sign senders' client certificates: each sender is asked for one, and MAIL without one that verifies gets 550 5.7.1 (451 4.7.0 before STARTTLS); read again on SIGHUP and when the file changes; needs --tls-cert")
	fs.Var(&c.tlsClientNames, "tls-client-name",
		"a name the sender's client certificate must carry, such as mail.protection.outlook.com (Exchange Online), or *.example.com for any one label below example.com (repeatable; in the environment, comma-separated); MAIL without one gets 550 5.7.1; without --tls-client-ca the chain is verified against the system roots; needs --tls-cert")
	// The milter door, in the customer's own Postfix (README: "Postfix milter").
	fs.StringVar(&c.milterListen, "milter-listen", "",
		"milter address for Postfix's smtpd_milters: tcp:127.0.0.1:7357, 127.0.0.1:7357 or unix:/run/sensor/milter.sock (default off)")
	fs.StringVar(&c.milterSocketMode, "milter-socket-mode", "0660", "file mode of the --milter-listen unix socket, in octal")
	fs.StringVar(&c.milterOnFault, "milter-on-fault", "accept",
		"when the milter cannot record a copy (spool full, local fault, --milter-timeout): accept (the mail flows, the copy is counted lost) or tempfail (Postfix keeps the mail and retries)")
	fs.DurationVar(&c.milterTimeout, "milter-timeout", 10*time.Second,
		"longest the milter holds Postfix at one step of a message, the wait for the record's commit at its end included; past it --milter-on-fault decides")
	fs.BoolVar(&c.milterAddHeader, "milter-add-header", false,
		"add X-Journal-Sensor-Id: <record id> to each message the milter recorded (the only change it ever makes to mail)")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	// Enforcement: verdicts from the pipeline, acted on in the recipients' mailboxes.
	c.enf.register(fs)
	return fs
}

// loadServeConfig parses args, layers env and the config file, and checks the result.
// extra registers a command's own flags beside serve's (sensor enforce).
func loadServeConfig(args []string, stderr io.Writer, getenv func(string) string, extra ...func(*serveConfig, *flag.FlagSet)) (*serveConfig, error) {
	c := &serveConfig{}
	fs := serveFlags(c, stderr)
	for _, f := range extra {
		f(c, fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	if c.configFile == "" {
		c.configFile = getenv("SENSOR_CONFIG")
	}
	modeOnCommandLine := false
	fs.Visit(func(f *flag.Flag) { modeOnCommandLine = modeOnCommandLine || f.Name == "milter-socket-mode" })
	file, layerErr := layer(fs, c.configFile, getenv)
	if file != nil && file.nodes["access"] != nil {
		c.accessNode, c.accessFile, c.accessWhere = file.nodes["access"], file.path, file.at("access", "")
	}
	// YAML reads an unquoted 0660 as the number 432, which would come back as mode 0432: a
	// file mode is octal text, so the file's own spelling of it is kept.
	if n := fileNode(file, "milter-socket-mode"); n != nil && n.Kind == yaml.ScalarNode && !modeOnCommandLine &&
		getenv(envName("milter-socket-mode")) == "" {
		c.milterSocketMode = n.Value
	}
	return c, errors.Join(layerErr, c.check())
}

// fileNode is the value of key in the config file f, nil when f or the key is absent.
func fileNode(f *configFile, key string) *yaml.Node {
	if f == nil {
		return nil
	}
	return f.nodes[key]
}

// check validates every setting and reports all problems at once, each naming its flag.
func (c *serveConfig) check() error {
	var errs []error
	bad := func(flag, format string, a ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, a...)))
	}
	var err error
	if c.mode, err = parser.ParseAttachmentMode(c.attachments); err != nil {
		bad("attachments", "%v", err)
	}
	for flag, addr := range map[string]string{"smtp-listen": c.smtpListen, "admin-listen": c.adminListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(flag, "%q is not host:port (%v)", addr, err)
		}
	}
	if c.dataDir == "" {
		bad("data-dir", "must not be empty")
	}
	if c.pipelineURL == "" {
		abs, err := filepath.Abs(filepath.Join(c.dataDir, "outbox"))
		if err != nil {
			bad("data-dir", "%v", err)
		}
		c.pipelineURL = "file://" + abs
	}
	if u, err := url.Parse(c.pipelineURL); err != nil || (u.Scheme != "https" && u.Scheme != "file") {
		bad("pipeline-url", "%q: want https://host[:port][/prefix] or file:///dir (TLS is not optional)", c.pipelineURL)
	} else if u.User != nil {
		// The uploader refuses it too; saying so here lets config check catch it. The
		// problem's text is masked where it is printed, as every URL is.
		bad("pipeline-url", "%q must not carry a user or password: put the token in --pipeline-token-file", c.pipelineURL)
	}
	// readToken reads a bearer token from the file a flag names; the token itself never
	// appears in a problem.
	readToken := func(flag, path, fix string) string {
		if path == "" {
			return ""
		}
		b, err := os.ReadFile(path)
		switch {
		case err != nil:
			bad(flag, "%v%s", err, fix)
		case strings.TrimSpace(string(b)) == "":
			bad(flag, "%s is empty%s", path, fix)
		}
		return strings.TrimSpace(string(b))
	}
	c.token = readToken("pipeline-token-file", c.pipelineTokenFile, "")
	c.adminToken = readToken("admin-token-file", c.adminTokenFile,
		"; name a readable file holding the admin endpoints' bearer token, or remove the key to leave them open")
	for flag, f := range map[string]string{"pipeline-ca-file": c.pipelineCAFile, "pipeline-client-cert": c.clientCertFile, "pipeline-client-key": c.clientKeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			bad(flag, "%v", err)
		}
	}
	if (c.clientCertFile == "") != (c.clientKeyFile == "") {
		bad("pipeline-client-cert", "--pipeline-client-cert and --pipeline-client-key go together")
	}
	switch {
	case c.tlsCert != "" && c.tlsKey == "":
		bad("tls-cert", "set without --tls-key")
	case c.tlsKey != "" && c.tlsCert == "":
		bad("tls-key", "set without --tls-cert")
	case c.tlsCert != "":
		if _, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey); err != nil {
			bad("tls-cert", "%s with --tls-key %s: %v", c.tlsCert, c.tlsKey, err)
		}
	}
	if c.smtpsListen != "" {
		if _, _, err := net.SplitHostPort(c.smtpsListen); err != nil {
			bad("smtps-listen", "%q is not host:port (%v)", c.smtpsListen, err)
		} else if c.tlsCert == "" {
			bad("smtps-listen", "needs --tls-cert and --tls-key")
		}
	}
	if c.requireTLS && c.tlsCert == "" {
		bad("require-tls", "needs --tls-cert and --tls-key: without a certificate no client could send")
	}
	if c.tlsClientCA != "" {
		if _, err := sensor.LoadClientCAs(c.tlsClientCA); err != nil {
			bad("tls-client-ca", "%v", err)
		}
	}
	for _, n := range c.tlsClientNames {
		if err := sensor.CheckClientName(n); err != nil {
			bad("tls-client-name", "%q: %v", n, err)
		}
	}
	if (c.tlsClientCA != "" || len(c.tlsClientNames) > 0) && c.tlsCert == "" {
		flag := "tls-client-ca"
		if c.tlsClientCA == "" {
			flag = "tls-client-name"
		}
		bad(flag, "needs --tls-cert and --tls-key: a client certificate is shown only over TLS")
	}
	if c.maxMessageBytes <= 0 {
		bad("max-message-bytes", "must be positive")
	}
	if c.spoolMaxBytes < 0 {
		bad("spool-max-bytes", "must not be negative")
	}
	if c.maxTxnTime <= 0 {
		bad("max-transaction-time", "must be positive")
	}
	if c.idleTimeout <= 0 {
		bad("idle-timeout", "must be positive")
	}
	if c.maxConns <= 0 {
		bad("max-connections", "%d: must be positive", c.maxConns)
	}
	switch {
	case c.maxConnsPerIP <= 0:
		bad("max-connections-per-ip", "%d: must be positive", c.maxConnsPerIP)
	case c.maxConns > 0 && c.maxConnsPerIP > c.maxConns:
		bad("max-connections-per-ip", "%d is more than --max-connections %d, so it would never apply", c.maxConnsPerIP, c.maxConns)
	}
	for _, a := range c.journalAddresses {
		if err := sensor.CheckRecipient(a); err != nil {
			bad("journal-address", "%q: %v; write local@domain, such as journal-7f3kq9@example.org, or *@domain for every address at one domain", a, err)
		}
	}
	c.recipients, _ = sensor.NewRecipients(c.journalAddresses) // nil on a bad entry, reported above
	c.checkOrigin(bad, readToken)
	c.checkMilter(bad)
	c.enf.check(c.pipelineURL, bad, readToken)
	errs = append(errs, c.checkAccess()...)
	if c.shutdownTimeout <= 0 {
		bad("shutdown-timeout", "must be positive")
	}
	if c.maxAge <= 0 {
		bad("max-age", "must be positive")
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		bad("log-format", "%q: want text or json", c.logFormat)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		bad("log-level", "%v", err)
	}
	return errors.Join(errs...)
}

// checkOrigin checks the header proofs of origin and makes their judge. Without a header
// proof, copies prove their origin by the door alone (--allow-cidr, --tls-client-name,
// --journal-address); with one, each copy must give one that holds (sensor/origin.go).
func (c *serveConfig) checkOrigin(bad func(flag, format string, a ...any), readToken func(flag, path, fix string) string) {
	for _, t := range c.m365Tenants {
		if err := sensor.CheckTenant(t); err != nil {
			bad("m365-tenant", "%q: %v; write the tenant's initial domain, such as contoso.onmicrosoft.com, or its tenant id, a GUID such as 3f2504e0-4f89-11d3-9a0c-0305e82c3301", t, err)
		}
	}
	if c.sourceHeader != "" {
		if err := sensor.CheckSourceHeader(c.sourceHeader); err != nil {
			bad("source-header", "%q: %v", c.sourceHeader, err)
		}
	}
	switch {
	case c.sourceHeader != "" && c.sourceSecretFile == "":
		bad("source-header", "set without --source-header-secret-file, the file that holds its secret")
	case c.sourceSecretFile != "" && c.sourceHeader == "":
		bad("source-header-secret-file", "set without --source-header, the name of the header that carries the secret")
	}
	// The secret never appears in a problem: only its file and what is wrong with it.
	secret := readToken("source-header-secret-file", c.sourceSecretFile,
		"; name a readable file holding the secret your routing rule or gateway puts in the source header")
	if secret != "" {
		if err := sensor.CheckSourceSecret(secret); err != nil {
			bad("source-header-secret-file", "%s: the secret is %v", c.sourceSecretFile, err)
		}
	}
	if c.sourceHeader == "" || c.sourceSecretFile == "" {
		secret = "" // the pair is incomplete, reported above
	}
	c.origin, _ = sensor.NewOrigin(sensor.OriginConfig{ // nil on a bad setting, reported above
		Tenants:      c.m365Tenants,
		SourceHeader: c.sourceHeader,
		SourceSecret: secret,
	})
}

// checkMilter checks the milter door's settings.
func (c *serveConfig) checkMilter(bad func(flag, format string, a ...any)) {
	if c.milterListen != "" {
		if _, _, err := sensor.ParseMilterAddr(c.milterListen); err != nil {
			bad("milter-listen", "%v", err)
		}
	}
	if m, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(c.milterSocketMode), "0o"), 8, 32); err != nil || m > 0o777 {
		bad("milter-socket-mode", "%q is not a file mode; write one in octal, such as 0660 (owner and group read and write)", c.milterSocketMode)
	} else {
		c.milterMode = fs.FileMode(m)
	}
	var err error
	if c.milterFault, err = sensor.ParseMilterFault(c.milterOnFault); err != nil {
		bad("milter-on-fault", "%q: %v", c.milterOnFault, err)
	}
	if c.milterTimeout <= 0 {
		bad("milter-timeout", "must be positive, such as 10s")
	}
}

// checkAccess compiles the host access table, from the config file's access key or from
// --allow-cidr, into c.access, and reports what is wrong with it: each problem of the
// table's own with its line, groups no address can reach, and what the rest of the
// configuration makes of a group's policy.
func (c *serveConfig) checkAccess() []error {
	c.access = nil
	var errs []error
	switch {
	case len(c.allowCIDRs) > 0:
		t, err := access.AllowList(c.allowCIDRs)
		for _, p := range accessProblems(err) {
			errs = append(errs, fmt.Errorf("--allow-cidr: %s", p.Msg))
		}
		if c.accessNode != nil {
			return append(errs, fmt.Errorf("--allow-cidr: cannot be combined with the access table (%s), of which it is a shortcut; "+
				"put its ranges in an accept group of the table, or remove one of the two", c.accessWhere))
		}
		c.access = t
		return errs
	case c.accessNode != nil:
		t, err := access.Decode(c.accessNode)
		for _, p := range accessProblems(err) {
			errs = append(errs, c.accessProblem(p))
		}
		c.access = t
	}
	if c.access == nil {
		return errs
	}
	for _, s := range c.access.Unreachable() {
		var by []string
		for _, g := range s.By {
			by = append(by, fmt.Sprintf("%q", g.Name))
		}
		errs = append(errs, c.accessProblem(&access.Problem{Line: s.Group.Line, Where: fmt.Sprintf("group %q", s.Group.Name),
			Msg: fmt.Sprintf("can never match: every address in its cidrs is in a group above it (%s), which matches first; remove it, or move it above them",
				strings.Join(by, ", "))}))
	}
	for _, g := range c.access.Groups() {
		where := fmt.Sprintf("group %q", g.Name)
		if g.RequireTLS && c.tlsCert == "" {
			errs = append(errs, c.accessProblem(&access.Problem{Line: g.KeyLine("require_tls"), Where: where,
				Msg: "require_tls needs --tls-cert and --tls-key: without a certificate no client of the group could send"}))
		}
		if c.maxConnsPerIP > 0 && g.MaxConnectionsPerIP > c.maxConnsPerIP {
			errs = append(errs, c.accessProblem(&access.Problem{Line: g.KeyLine("max_connections_per_ip"), Where: where,
				Msg: fmt.Sprintf("max_connections_per_ip %d is more than --max-connections-per-ip %d, which holds for every address, so it would never apply; raise --max-connections-per-ip, or lower this",
					g.MaxConnectionsPerIP, c.maxConnsPerIP)}))
		}
	}
	if len(errs) > 0 {
		c.access = nil
	}
	return errs
}

// accessProblem places a problem of the access table in the config file.
func (c *serveConfig) accessProblem(p *access.Problem) *problem {
	where := c.accessWhere
	if p.Line > 0 {
		where = fmt.Sprintf("%s:%d: access", c.accessFile, p.Line)
		if p.Where != "" {
			where += " " + p.Where
		}
	}
	return &problem{key: "access", where: where, msg: p.Msg}
}

// accessProblems are the problems in an error of package access, which makes no other kind.
func accessProblems(err error) []*access.Problem {
	var out []*access.Problem
	for _, e := range leafErrors(err) {
		p, ok := e.(*access.Problem)
		if !ok {
			p = &access.Problem{Msg: e.Error()}
		}
		out = append(out, p)
	}
	return out
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serveCmd(args []string, stderr io.Writer, getenv func(string) string) int {
	c, err := loadServeConfig(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sensor serve: %v\n", err)
		return 2
	}
	log := newLogger(stderr, c.logFormat, c.logLevel)
	// Libraries that log through the standard logger (go-milter's protocol warnings,
	// net/http's server errors) then come out in the sensor's format, not as plain lines in
	// the middle of a JSON stream.
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, c, log, nil); err != nil {
		log.Error("sensor stopped", "error", err)
		return 1
	}
	return 0
}

// serve runs the sensor until ctx is done (SIGINT or SIGTERM). ready, when set, is told the
// bound addresses once mail is being accepted.
func serve(ctx context.Context, c *serveConfig, log *slog.Logger, ready func(smtp, admin net.Addr)) error {
	hostname, _ := os.Hostname()
	unlock, err := lockDataDir(c.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	sp, err := spool.Open(filepath.Join(c.dataDir, "spool"), log.With("component", "spool"))
	if err != nil {
		return fmt.Errorf("opening the spool under --data-dir %s: %w", c.dataDir, err)
	}
	sp.SetBudget(int64(c.spoolMaxBytes))

	up, err := uploader.New(c.uploaderConfig(log.With("component", "uploader")), sp)
	if err != nil {
		return fmt.Errorf("pipeline settings: %w", err)
	}
	var blobs parser.BlobSink
	if c.mode == parser.AttachmentsContent {
		blobs = blobSink{sp}
	}
	p, err := parser.New(parser.Options{
		Attachments: c.mode,
		Blobs:       blobs,
		NoURLs:      !bool(c.urls),
		CRLFInput:   true,
		Logger:      log.With("component", "parser"),
	})
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	var certs *sensor.CertReloader
	if c.tlsCert != "" {
		if certs, err = sensor.NewCertReloader(c.tlsCert, c.tlsKey, log.With("component", "tls")); err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
		tlsConfig = sensor.ServerTLSConfig(certs.GetCertificate)
	}
	var clientAuth *sensor.ClientAuth
	if c.tlsClientCA != "" || len(c.tlsClientNames) > 0 {
		if clientAuth, err = sensor.NewClientAuth(c.tlsClientCA, c.tlsClientNames, log.With("component", "tls")); err != nil {
			return fmt.Errorf("--tls-client-ca, --tls-client-name: %w", err)
		}
	}
	metrics := &sensor.Metrics{}
	if certs != nil {
		certs.CountIn(metrics)
	}
	if clientAuth != nil {
		clientAuth.CountIn(metrics)
	}
	idx, err := c.openIndex(log.With("component", "index"))
	if err != nil {
		return err
	}
	var lookup enforce.Index // stays a nil interface when enforcement is off
	var recorded func(*api.Record)
	if idx != nil {
		// Closed when serve returns, after the doors have drained: no Add comes later.
		defer func() {
			if err := idx.Close(); err != nil {
				log.Warn("closing the enforcement index", "error", err)
			}
		}()
		lookup, recorded = idx, idx.Add
	}
	intake := sensor.NewIntake(sensor.IntakeConfig{
		SensorID: hostname,
		Version:  version,
		Logger:   log.With("component", "intake"),
		Origin:   c.origin,
		Recorded: recorded,
	}, p, sp, metrics)
	smtpSrv := sensor.NewSMTPServer(sensor.SMTPConfig{
		Domain:             hostname,
		MaxMessageBytes:    int64(c.maxMessageBytes),
		IdleTimeout:        c.idleTimeout,
		MaxTransactionTime: c.maxTxnTime,
		Conns:              sensor.ConnLimits{Total: c.maxConns, PerIP: c.maxConnsPerIP},
		Recipients:         c.recipients,
		Access:             c.access,
		TLSConfig:          tlsConfig,
		RequireTLS:         c.requireTLS,
		ClientAuth:         clientAuth,
		Logger:             log.With("component", "smtp"),
	}, intake, metrics)

	smtpLn, err := net.Listen("tcp", c.smtpListen)
	if err != nil {
		return fmt.Errorf("--smtp-listen: %w", err)
	}
	var smtpsLn net.Listener
	if c.smtpsListen != "" {
		if smtpsLn, err = net.Listen("tcp", c.smtpsListen); err != nil {
			smtpLn.Close()
			return fmt.Errorf("--smtps-listen: %w", err)
		}
	}
	var milterLn net.Listener
	if c.milterListen != "" {
		if milterLn, err = sensor.ListenMilter(c.milterListen, c.milterMode); err != nil {
			smtpLn.Close()
			if smtpsLn != nil {
				smtpsLn.Close()
			}
			return fmt.Errorf("--milter-listen: %w", err)
		}
	}
	adminLn, err := net.Listen("tcp", c.adminListen)
	if err != nil {
		smtpLn.Close()
		if smtpsLn != nil {
			smtpsLn.Close()
		}
		if milterLn != nil {
			milterLn.Close()
		}
		return fmt.Errorf("--admin-listen: %w", err)
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watchCerts(watchCtx, certs, clientAuth, log)

	engine, err := c.engine(log.With("component", "enforce"), lookup)
	var listening atomic.Bool
	admin := &sensor.Admin{Metrics: metrics, Uploads: up, Spool: sp, Started: time.Now(), Version: version,
		Listening: listening.Load, Logger: log.With("component", "admin"), Token: c.adminToken,
		Paths: []string{c.dataDir}, SpoolBudget: int64(c.spoolMaxBytes)}
	switch {
	case err != nil:
		// A journal that cannot be read stops enforcement, not the recording of mail: every
		// copy refused would go unscored. /status and /metrics say enforcement is down.
		log.Error("enforcement not started; the sensor records mail without it", "error", err)
		admin.Enforcement, admin.EnforceMode = enforceDown{err}, c.enf.mode
	case engine != nil:
		admin.Enforcement, admin.EnforceMode = engine, c.enf.mode
	}
	adminSrv := &http.Server{Handler: admin.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := adminSrv.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server failed", "error", err)
		}
	}()

	stopUploads := runUploads(up, log)

	// Enforcement runs beside the doors and stops with the sensor: what it has not finished
	// is in its journal for the next start.
	enfCtx, stopEnforce := context.WithCancel(context.Background())
	enfDone := make(chan struct{})
	go func() {
		defer close(enfDone)
		if engine == nil {
			return
		}
		if err := engine.Run(enfCtx); err != nil {
			log.Error("enforcement stopped", "error", err)
		}
	}()

	smtpDone := make(chan error, 2)
	listening.Store(true)
	go func() { smtpDone <- smtpSrv.Serve(smtpLn) }()
	smtpsAddr := "off"
	if smtpsLn != nil {
		smtpsAddr = smtpsLn.Addr().String()
		go func() { smtpDone <- smtpSrv.ServeTLS(smtpsLn) }()
	}
	var milterSrv *sensor.MilterServer
	milterAddr := "off"
	milterDone := make(chan error, 1)
	if milterLn != nil {
		milterSrv = sensor.NewMilterServer(sensor.MilterConfig{
			AddHeader: c.milterAddHeader,
			OnFault:   c.milterFault,
			Timeout:   c.milterTimeout,
			Logger:    log.With("component", "milter"),
		}, intake, metrics)
		milterAddr = milterLn.Addr().Network() + ":" + milterLn.Addr().String()
		go func() { milterDone <- milterSrv.Serve(milterLn) }()
	}
	log.Info("sensor ready",
		"version", version,
		"smtp", smtpLn.Addr().String(),
		"smtps", smtpsAddr,
		"milter", milterAddr,
		"milter_on_fault", c.milterFault.String(),
		"starttls", certs != nil,
		"require_tls", c.requireTLS,
		"client_cert", clientAuth != nil,
		"access", accessSummary(c.access),
		"admin", adminLn.Addr().String(),
		"data_dir", c.dataDir,
		"pipeline", maskUserinfo(c.pipelineURL),
		"attachments", c.mode.String(),
		"urls", c.urls.String(),
		// The source header's name is not logged: with its secret, it is the proof.
		"m365_tenants", strings.Join(c.origin.Tenants(), ","),
		"source_header", c.origin.SourceHeader() != "",
		"enforcement", enforceSummary(&c.enf),
	)
	if ready != nil {
		ready(smtpLn.Addr(), adminLn.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: new connections get 421; finishing messages under way",
			"bound", c.shutdownTimeout.String())
	case runErr = <-smtpDone:
		log.Error("SMTP server failed", "error", runErr)
	case runErr = <-milterDone:
		log.Error("milter server failed", "error", runErr)
	}
	listening.Store(false)
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), c.shutdownTimeout)
	// Both doors drain at once, within the one bound; closing the milter's listener removes
	// its socket file.
	milterStopped := make(chan struct{})
	go func() {
		defer close(milterStopped)
		if milterSrv == nil {
			return
		}
		if err := milterSrv.Shutdown(drainCtx); err != nil {
			log.Warn("milter shutdown", "error", err)
		}
	}()
	if err := smtpSrv.Shutdown(drainCtx); err != nil {
		log.Warn("SMTP shutdown", "error", err)
	}
	<-milterStopped
	cancelDrain()
	stopEnforce()
	<-enfDone
	log.Info("SMTP stopped; flushing uploads", "bound", "10s")
	flushUploads(sp, up, 10*time.Second, log)
	stopUploads()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = adminSrv.Shutdown(shutdownCtx)
	log.Info("sensor stopped")
	return runErr
}

// accessSummary names the access table's groups and their actions for the start-up log.
func accessSummary(t *access.Table) string {
	if t == nil {
		return "off (every client accepted)"
	}
	var parts []string
	for _, g := range t.Groups() {
		parts = append(parts, g.Name+":"+g.Action.String())
	}
	return strings.Join(parts, ",")
}

// certPollInterval is how often the certificate files are checked for a renewal.
const certPollInterval = 5 * time.Second

// watchCerts reloads the SMTP door's certificate, and the client CA bundle when there is
// one, on SIGHUP and when their files change, until ctx is done. Without a certificate,
// SIGHUP is logged and otherwise ignored: it must not stop a sensor whose operator ran
// `systemctl reload`. clientAuth may be nil.
func watchCerts(ctx context.Context, certs *sensor.CertReloader, clientAuth *sensor.ClientAuth, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if certs != nil {
		go certs.Watch(ctx, certPollInterval)
	}
	if clientAuth != nil {
		go clientAuth.Watch(ctx, certPollInterval)
	}
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if certs == nil {
				log.Info("SIGHUP: no TLS certificate to reload")
				continue
			}
			log.Info("SIGHUP: reloading the TLS certificate")
			_ = certs.Reload() // a refusal is logged there; the pair in use stays
			if clientAuth != nil {
				_ = clientAuth.Reload() // likewise
			}
		}
	}()
}

// flushUploads gives the uploader a bounded time to deliver what is pending. Whatever is
// left stays in the spool and goes out after the next start.
func flushUploads(sp *spool.Spool, up *uploader.Uploader, bound time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if waitUploaded(ctx, sp, bound, nil) {
		return
	}
	s := up.Stats()
	log.Warn("uploads not flushed before shutdown; they stay in the spool",
		"pending_records", s.PendingRecords, "pending_batches", s.PendingBatches)
}

// blobSink hands the parser the spool's blob writers (content mode). The spool returns a
// concrete type, which is kept out of the interface when it is nil.
type blobSink struct{ sp *spool.Spool }

func (s blobSink) Create() (parser.BlobWriter, error) {
	w, err := s.sp.CreateBlob()
	if err != nil {
		return nil, err
	}
	return w, nil
}
