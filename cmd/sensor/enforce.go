package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/journalsensor/sensor/enforce"
	"github.com/journalsensor/sensor/index"
	"github.com/journalsensor/sensor/uploader"
)

// enforceConfig is enforcement's part of the serve configuration (docs/enforcement.md).
type enforceConfig struct {
	mode            string
	poll            time.Duration
	findWindow      time.Duration
	window          time.Duration
	allowHardDelete bool

	graphTenant, graphClientID                   string
	graphSecretFile, graphCertFile, graphKeyFile string
	graphLoginURL, graphURL, graphFolder         string
	graphDomains                                 listFlag

	gmailCredsFile, gmailURL, gmailLabel string
	gmailDomains                         listFlag

	// byHand is sensor enforce: one action, no verdict feed, so no pipeline needed.
	byHand bool

	// Derived by check.
	observe     bool
	graphSecret string
	graphCert   *x509.Certificate
	graphKey    crypto.Signer
	gmailCreds  []byte
}

func (e *enforceConfig) register(fs *flag.FlagSet) {
	fs.Var(&e.graphDomains, "graph-domain",
		"act on verdicts for recipients at this Microsoft 365 domain, through Microsoft Graph (repeatable; in the environment, comma-separated); enforcement is off without a --graph-domain or --gmail-domain")
	fs.StringVar(&e.graphTenant, "graph-tenant", "", "Entra tenant id or initial domain of the app that acts on mailboxes")
	fs.StringVar(&e.graphClientID, "graph-client-id", "", "application (client) id of that app")
	fs.StringVar(&e.graphSecretFile, "graph-client-secret-file", "", "file holding the app's client secret (or use --graph-client-cert-file)")
	fs.StringVar(&e.graphCertFile, "graph-client-cert-file", "", "PEM certificate registered on the app, for a signed client assertion instead of a secret")
	fs.StringVar(&e.graphKeyFile, "graph-client-key-file", "", "PEM key of --graph-client-cert-file")
	fs.StringVar(&e.graphLoginURL, "graph-login-url", "https://login.microsoftonline.com", "Entra token authority (a sovereign cloud's, or a test's)")
	fs.StringVar(&e.graphURL, "graph-url", "https://graph.microsoft.com", "Microsoft Graph endpoint")
	fs.StringVar(&e.graphFolder, "graph-quarantine-folder", "Quarantine", "folder under the mailbox root that quarantine moves copies to; created when missing")
	fs.Var(&e.gmailDomains, "gmail-domain",
		"act on verdicts for recipients at this Google Workspace domain, through the Gmail API (repeatable; in the environment, comma-separated)")
	fs.StringVar(&e.gmailCredsFile, "gmail-credentials-file", "", "service-account JSON key with domain-wide delegation (gmail.modify; https://mail.google.com/ for hard_delete)")
	fs.StringVar(&e.gmailURL, "gmail-url", "https://gmail.googleapis.com", "Gmail API endpoint")
	fs.StringVar(&e.gmailLabel, "gmail-quarantine-label", "Quarantine", "label quarantine adds (INBOX is taken off); created when missing")
	fs.StringVar(&e.mode, "enforce-mode", "observe",
		"observe (look every copy up and report what would be done, changing nothing: how to start) or enforce (act)")
	fs.DurationVar(&e.poll, "verdict-poll", 5*time.Second, "how often the pipeline's verdict feed is asked (at once again while pages come back full)")
	fs.DurationVar(&e.findWindow, "enforce-find-window", 15*time.Minute,
		"how long a copy not yet in its mailbox is looked for again before the outcome is not_found (a journal copy can beat the delivery)")
	fs.DurationVar(&e.window, "enforce-window", 30*24*time.Hour, "how long verdicts are remembered, so that one seen again is not acted on twice and a restore can undo it")
	fs.BoolVar(&e.allowHardDelete, "allow-hard-delete", false, "let hard_delete verdicts run (Graph permanentDelete, Gmail delete: not undoable); without it they are skipped")
}

func (e *enforceConfig) enabled() bool { return len(e.graphDomains)+len(e.gmailDomains) > 0 }

// check validates enforcement's settings; readSecret reads a file a flag names.
func (e *enforceConfig) check(pipelineURL string, bad func(flag, format string, a ...any), readSecret func(flag, path, fix string) string) {
	switch e.mode {
	case "observe":
		e.observe = true
	case "enforce":
	default:
		bad("enforce-mode", "%q: want observe (report what would be done) or enforce (act)", e.mode)
	}
	for _, d := range []struct {
		flag string
		d    time.Duration
	}{{"verdict-poll", e.poll}, {"enforce-find-window", e.findWindow}, {"enforce-window", e.window}} {
		if d.d <= 0 {
			bad(d.flag, "must be positive")
		}
	}
	seen := map[string]string{}
	for _, l := range []struct {
		flag string
		list listFlag
	}{{"graph-domain", e.graphDomains}, {"gmail-domain", e.gmailDomains}} {
		flag := l.flag
		for _, d := range l.list {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "" || strings.ContainsAny(d, "@ /") || !strings.Contains(d, ".") {
				bad(flag, "%q is not a domain; write the part after the @, such as contoso.com", d)
			}
			if other, ok := seen[d]; ok && other != flag {
				bad(flag, "%s is also a --%s: a domain's mailboxes live on one platform", d, other)
			}
			seen[d] = flag
		}
	}
	if !e.enabled() {
		return
	}
	if u, err := url.Parse(pipelineURL); !e.byHand && (err != nil || u.Scheme != "https") {
		bad("pipeline-url", "enforcement pulls verdicts from the pipeline, so it needs an https:// --pipeline-url (not the file outbox)")
	}
	if len(e.graphDomains) > 0 {
		e.checkGraph(bad, readSecret)
	}
	if len(e.gmailDomains) > 0 {
		if e.gmailCredsFile == "" {
			bad("gmail-credentials-file", "needed with --gmail-domain: the service account's JSON key")
		} else if b, err := os.ReadFile(e.gmailCredsFile); err != nil {
			bad("gmail-credentials-file", "%v", err)
		} else {
			e.gmailCreds = b
			if _, err := enforce.NewGmail(enforce.GmailConfig{Credentials: b}); err != nil {
				bad("gmail-credentials-file", "%s: %v", e.gmailCredsFile, err)
			}
		}
	}
}

func (e *enforceConfig) checkGraph(bad func(flag, format string, a ...any), readSecret func(flag, path, fix string) string) {
	if e.graphTenant == "" {
		bad("graph-tenant", "needed with --graph-domain: the tenant id or initial domain (contoso.onmicrosoft.com)")
	}
	if e.graphClientID == "" {
		bad("graph-client-id", "needed with --graph-domain: the app's application (client) id")
	}
	switch {
	case e.graphSecretFile != "" && (e.graphCertFile != "" || e.graphKeyFile != ""):
		bad("graph-client-secret-file", "set either a client secret or --graph-client-cert-file with its key, not both")
	case e.graphSecretFile != "":
		e.graphSecret = readSecret("graph-client-secret-file", e.graphSecretFile, "")
	case e.graphCertFile != "" && e.graphKeyFile != "":
		pair, err := tls.LoadX509KeyPair(e.graphCertFile, e.graphKeyFile)
		if err != nil {
			bad("graph-client-cert-file", "%v", err)
			return
		}
		signer, ok := pair.PrivateKey.(crypto.Signer)
		if !ok {
			bad("graph-client-key-file", "%s: not a signing key", e.graphKeyFile)
			return
		}
		e.graphCert, e.graphKey = pair.Leaf, signer
	case e.graphCertFile != "":
		bad("graph-client-key-file", "needed with --graph-client-cert-file")
	case e.graphKeyFile != "":
		bad("graph-client-cert-file", "needed with --graph-client-key-file")
	default:
		bad("graph-client-secret-file", "needed with --graph-domain: a client secret file, or --graph-client-cert-file and --graph-client-key-file")
	}
}

// providers builds the Graph and Gmail clients and the routing of recipients to them.
func (e *enforceConfig) providers(log *slog.Logger) (func(string) enforce.Provider, error) {
	byDomain := map[string]enforce.Provider{}
	if len(e.graphDomains) > 0 {
		g, err := enforce.NewGraph(enforce.GraphConfig{
			Tenant: e.graphTenant, ClientID: e.graphClientID, ClientSecret: e.graphSecret,
			Certificate: e.graphCert, Key: e.graphKey, LoginURL: e.graphLoginURL, GraphURL: e.graphURL,
			QuarantineFolder: e.graphFolder, Logger: log.With("provider", "graph"),
		})
		if err != nil {
			return nil, fmt.Errorf("microsoft graph: %w", err)
		}
		for _, d := range e.graphDomains {
			byDomain[strings.ToLower(strings.TrimSpace(d))] = g
		}
	}
	if len(e.gmailDomains) > 0 {
		g, err := enforce.NewGmail(enforce.GmailConfig{Credentials: e.gmailCreds, GmailURL: e.gmailURL,
			QuarantineLabel: e.gmailLabel, Logger: log.With("provider", "gmail")})
		if err != nil {
			return nil, fmt.Errorf("gmail: %w", err)
		}
		for _, d := range e.gmailDomains {
			byDomain[strings.ToLower(strings.TrimSpace(d))] = g
		}
	}
	return func(rcpt string) enforce.Provider {
		_, domain, ok := strings.Cut(strings.ToLower(rcpt), "@")
		if !ok {
			return nil
		}
		return byDomain[domain]
	}, nil
}

// openIndex opens the index of the recipients of recent records under --data-dir, for
// verdicts that come without recipients; nil when enforcement is off, which alone asks it.
func (c *serveConfig) openIndex(log *slog.Logger) (*index.Index, error) {
	if !c.enf.enabled() {
		return nil, nil
	}
	dir := filepath.Join(c.dataDir, "index")
	idx, err := index.Open(dir, index.Config{Window: c.enf.window, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("opening the enforcement index under --data-dir %s: %w", c.dataDir, err)
	}
	return idx, nil
}

// engine makes the enforcement engine of a serve configuration, nil when it is off. idx
// answers verdicts without recipients; nil skips them.
func (c *serveConfig) engine(log *slog.Logger, idx enforce.Index) (*enforce.Engine, error) {
	e := &c.enf
	if !e.enabled() {
		return nil, nil
	}
	route, err := e.providers(log)
	if err != nil {
		return nil, err
	}
	client, err := uploader.PipelineClient(uploader.Config{CAFile: c.pipelineCAFile, ClientCertFile: c.clientCertFile, ClientKeyFile: c.clientKeyFile})
	if err != nil {
		return nil, fmt.Errorf("pipeline settings: %w", err)
	}
	return enforce.NewEngine(enforce.Config{
		Feed:            enforce.NewHTTPFeed(c.pipelineURL, c.token, client, "journal-sensor/"+version),
		Route:           route,
		Index:           idx,
		Observe:         e.observe,
		AllowHardDelete: e.allowHardDelete,
		JournalPath:     filepath.Join(c.dataDir, "enforce", "journal.ndjson"),
		Poll:            e.poll,
		FindWindow:      e.findWindow,
		Window:          e.window,
		Logger:          log,
	})
}

// enforceCmd is `sensor enforce`: one action on one mailbox, by hand, with serve's
// configuration (its flags, config file and environment), printing each outcome. It acts
// unless --observe, whatever --enforce-mode says, and needs no pipeline. It keeps no
// journal: a restore needs --from, the folder or labels the undone action's outcome gave.
func enforceCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	var messageID, recipient, action, tag, from string
	var observe bool
	c, err := loadServeConfig(args, stderr, getenv, func(c *serveConfig, fs *flag.FlagSet) {
		c.enf.byHand = true
		fs.StringVar(&messageID, "message-id", "", "the message's Message-ID, with its angle brackets")
		fs.StringVar(&recipient, "recipient", "", "the mailbox (or group) to act on")
		fs.StringVar(&action, "action", "", "quarantine, delete, hard_delete, tag or restore")
		fs.StringVar(&tag, "tag", "", "the category or label, for --action tag")
		fs.StringVar(&from, "from", "", "for --action restore: where the copy goes back to (the from_folder of the undone action's outcome)")
		fs.BoolVar(&observe, "observe", false, "look the copies up and say what would be done; change nothing")
	})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sensor enforce: %v\n", err)
		return 2
	}
	var problems []string
	if messageID == "" {
		problems = append(problems, "--message-id is required")
	}
	if recipient == "" {
		problems = append(problems, "--recipient is required")
	}
	act := enforce.Action(action)
	switch act {
	case enforce.Quarantine, enforce.Delete, enforce.HardDelete:
	case enforce.Tag:
		if tag == "" {
			problems = append(problems, "--action tag needs --tag")
		}
	case enforce.Restore:
		if from == "" {
			problems = append(problems, "--action restore needs --from")
		}
	default:
		problems = append(problems, fmt.Sprintf("--action %q: want quarantine, delete, hard_delete, tag or restore", action))
	}
	if !c.enf.enabled() {
		problems = append(problems, "no --graph-domain or --gmail-domain: nothing to act through")
	}
	if act == enforce.HardDelete && !c.enf.allowHardDelete {
		problems = append(problems, "--action hard_delete needs --allow-hard-delete")
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "sensor enforce: %s\n", strings.Join(problems, "; "))
		return 2
	}
	log := newLogger(stderr, c.logFormat, c.logLevel)
	route, err := c.enf.providers(log)
	if err != nil {
		fmt.Fprintf(stderr, "sensor enforce: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// An action asked for by hand is done unless --observe says otherwise, whatever
	// --enforce-mode the shared configuration gives serve.
	step := enforce.Step{Action: act, Tag: tag, From: from, Observe: observe}
	failed := false
	for _, o := range enforceByHand(ctx, route, strings.ToLower(recipient), messageID, step) {
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\tref=%s\tfrom=%s\t%s\n", o.Recipient, o.Provider, o.Action, o.Status, o.MessageRef, o.FromFolder, o.Detail)
		failed = failed || o.Status == enforce.Failed
	}
	if failed {
		return 1
	}
	return 0
}

// enforceByHand runs one step for a recipient, through a group's members when it is one.
func enforceByHand(ctx context.Context, route func(string) enforce.Provider, rcpt, messageID string, step enforce.Step) []enforce.Outcome {
	o := enforce.Outcome{Recipient: rcpt, Action: step.Action, At: time.Now().UTC()}
	p := route(rcpt)
	if p == nil {
		o.Status, o.Detail = enforce.Skipped, "external recipient: its domain is in neither --graph-domain nor --gmail-domain"
		return []enforce.Outcome{o}
	}
	o.Provider = p.Name()
	fail := func(err error) []enforce.Outcome {
		o.Status, o.Detail = enforce.Failed, err.Error()
		return []enforce.Outcome{o}
	}
	members, isGroup, err := p.Members(ctx, rcpt)
	if err != nil {
		return fail(err)
	}
	if isGroup {
		out := []enforce.Outcome{{Recipient: rcpt, Provider: p.Name(), Action: step.Action, Status: enforce.Skipped,
			Detail: fmt.Sprintf("a group: acting on its %d members", len(members)), At: o.At}}
		for _, m := range members {
			out = append(out, enforceByHand(ctx, route, strings.ToLower(m), messageID, step)...)
		}
		return out
	}
	copies, err := p.Find(ctx, rcpt, messageID)
	if err != nil {
		return fail(err)
	}
	if len(copies) == 0 {
		o.Status, o.Detail = enforce.NotFound, "no copy of "+messageID+" in the mailbox"
		return []enforce.Outcome{o}
	}
	var out []enforce.Outcome
	for _, c := range copies {
		res, err := p.Apply(ctx, rcpt, c, step)
		one := o
		if err != nil {
			one.Status, one.Detail = enforce.Failed, err.Error()
		} else {
			one.Status, one.MessageRef, one.FromFolder = res.Status, res.Ref, res.From
			if step.Observe {
				one.Detail = "observe: nothing was changed"
			}
		}
		out = append(out, one)
	}
	return out
}

// enforceSummary says, for the start-up log, whether enforcement is on and for which domains.
func enforceSummary(e *enforceConfig) string {
	if !e.enabled() {
		return "off"
	}
	var parts []string
	if len(e.graphDomains) > 0 {
		parts = append(parts, "graph:"+strings.Join(e.graphDomains, ","))
	}
	if len(e.gmailDomains) > 0 {
		parts = append(parts, "gmail:"+strings.Join(e.gmailDomains, ","))
	}
	return e.mode + " " + strings.Join(parts, " ")
}

// enforceDown stands for an engine that could not start, so that /status and /metrics say
// why.
type enforceDown struct{ err error }

func (d enforceDown) Snapshot() enforce.Stats {
	return enforce.Stats{JournalError: "enforcement did not start: " + d.err.Error()}
}
