//go:build e2e

package gateway

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// tlsFiles makes a CA and a certificate for localhost signed by it, in a directory
// Postfix's unprivileged smtp client can read, and returns the CA, that directory, and the
// CA, certificate and key files.
func tlsFiles(t *testing.T) (ca *testkit.CA, dir, caFile, certFile, keyFile string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sensor-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca = testkit.MakeCA(t, "journal sensor test CA")
	caFile = ca.WriteFile(t, filepath.Join(dir, "ca.pem"))
	srv := ca.Issue(t, testkit.Leaf{CN: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	certFile, keyFile = testkit.WriteCert(t, dir, "sensor", srv)
	return ca, dir, caFile, certFile, keyFile
}

// TestPostfixDeliversOverVerifiedTLS: a Postfix that verifies the sensor's certificate
// against the test CA delivers its always_bcc copy through STARTTLS, and the record says so;
// a Postfix that does not speak TLS is held off by --require-tls, its copy deferred (kept
// and retried), never bounced.
func TestPostfixDeliversOverVerifiedTLS(t *testing.T) {
	_, _, caFile, certFile, keyFile := tlsFiles(t)
	sensorAddr, sinkAddr := testkit.FreePort(t), testkit.FreePort(t)
	port := sensorAddr[strings.LastIndexByte(sensorAddr, ':'):]
	s := startSensor(t, sensorAddr, "--tls-cert", certFile, "--tls-key", keyFile, "--require-tls")
	startSink(t, sinkAddr)
	routes := map[string]string{"sensor.test": "localhost" + port, "example.net": sinkAddr}

	verifying := testkit.FreePort(t)
	// Verified TLS to the sensor only: the mailbox server (smtp-sink) offers none.
	pf := testkit.StartPostfix(t, verifying, routes, "smtp_tls_security_level = may\n"+
		"smtp_tls_policy_maps = inline:{ {[localhost]"+port+" = verify match=hostname} }\n"+
		"smtp_tls_CAfile = "+caFile+"\nsmtp_tls_loglevel = 1\n")
	msg := gatewayMessages()[0]
	if err := sendRaw(verifying, "alice@gw.test", "user@example.net", msg.body); err != nil {
		t.Fatal(err)
	}
	recs := s.waitRecords(t, 1, 60*time.Second, pf.Maillog)
	pf.WaitQueueEmpty(t, 30*time.Second)
	if tls := recs[0].Envelope.TLS; tls == nil || tls.Version == "" {
		t.Errorf("record %s: envelope.tls %+v, want the TLS the copy came over", recs[0].ID, tls)
	}
	if log := pf.Maillog(t); !strings.Contains(log, "Verified TLS connection established to localhost") {
		t.Errorf("Postfix's log does not show a verified TLS connection:\n%s", testkit.LastLines(log, 20))
	}

	plain := testkit.FreePort(t)
	pf2 := testkit.StartPostfix(t, plain, routes, "smtp_tls_security_level = none\n")
	if err := sendRaw(plain, "alice@gw.test", "user@example.net", msg.body); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(pf2.Maillog(t), "to=<journal@sensor.test>") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	log := pf2.Maillog(t)
	if !strings.Contains(log, "status=deferred") || strings.Contains(log, "status=bounced") {
		t.Errorf("a plain copy to a sensor that requires TLS must be deferred, not bounced:\n%s", testkit.LastLines(log, 20))
	}
	if n := len(s.records(t)); n != 1 {
		t.Errorf("%d records, want only the copy that came over TLS", n)
	}
}

// TestPostfixPresentsClientCert: a Postfix that shows a client certificate (its
// smtp_tls_cert_file, a server certificate as MTAs have, issued by the CA the sensor is
// given with --tls-client-ca) delivers its always_bcc copy over verified TLS, and the
// record names the certificate; a Postfix that shows none is refused at MAIL with 550 5.7.1,
// and bounces the copy rather than deferring it: failing proof of origin is permanent.
func TestPostfixPresentsClientCert(t *testing.T) {
	ca, dir, caFile, certFile, keyFile := tlsFiles(t)
	gw := ca.Issue(t, testkit.Leaf{CN: "mx.gw.test", DNSNames: []string{"mx.gw.test"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	gwCert, gwKey := testkit.WriteCert(t, dir, "gateway", gw)
	sensorAddr, sinkAddr := testkit.FreePort(t), testkit.FreePort(t)
	port := sensorAddr[strings.LastIndexByte(sensorAddr, ':'):]
	s := startSensor(t, sensorAddr, "--tls-cert", certFile, "--tls-key", keyFile,
		"--tls-client-ca", caFile, "--tls-client-name", "*.gw.test")
	startSink(t, sinkAddr)
	routes := map[string]string{"sensor.test": "localhost" + port, "example.net": sinkAddr}
	verifyTLS := "smtp_tls_security_level = may\n" +
		"smtp_tls_policy_maps = inline:{ {[localhost]" + port + " = verify match=hostname} }\n" +
		"smtp_tls_CAfile = " + caFile + "\nsmtp_tls_loglevel = 1\n"

	showing := testkit.FreePort(t)
	pf := testkit.StartPostfix(t, showing, routes, verifyTLS+"smtp_tls_cert_file = "+gwCert+"\nsmtp_tls_key_file = "+gwKey+"\n")
	msg := gatewayMessages()[0]
	if err := sendRaw(showing, "alice@gw.test", "user@example.net", msg.body); err != nil {
		t.Fatal(err)
	}
	recs := s.waitRecords(t, 1, 60*time.Second, pf.Maillog)
	pf.WaitQueueEmpty(t, 30*time.Second)
	if tls := recs[0].Envelope.TLS; tls == nil || tls.ClientName != "mx.gw.test" {
		t.Errorf("record %s: envelope.tls %+v, want client_name mx.gw.test", recs[0].ID, tls)
	}
	// Postfix names the client's signature only when it sent a certificate.
	if log := pf.Maillog(t); !regexp.MustCompile(`TLS connection established to localhost.* client-signature `).MatchString(log) {
		t.Errorf("Postfix's log does not show a TLS connection with a client certificate:\n%s", testkit.LastLines(log, 20))
	}

	hiding := testkit.FreePort(t)
	pf2 := testkit.StartPostfix(t, hiding, routes, verifyTLS)
	if err := sendRaw(hiding, "alice@gw.test", "user@example.net", msg.body); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(pf2.Maillog(t), "to=<journal@sensor.test>") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	log := pf2.Maillog(t)
	if !strings.Contains(log, "status=bounced") || !strings.Contains(log, "550 5.7.1 Client certificate not accepted: no certificate presented") {
		t.Errorf("a copy without a client certificate must be bounced with the 550 5.7.1 that says why:\n%s", testkit.LastLines(log, 20))
	}
	if n := len(s.records(t)); n != 1 {
		t.Errorf("%d records, want only the copy that showed a certificate", n)
	}
}
