//go:build e2e

package gateway

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// tlsFiles writes a CA and a certificate for localhost signed by it, readable by Postfix's
// unprivileged smtp client, and returns the CA, certificate and key files.
func tlsFiles(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sensor-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	caFile, cfg := testkit.NewCA(t, dir)
	if err := os.Chmod(caFile, 0o644); err != nil {
		t.Fatal(err)
	}
	crt := cfg.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(crt.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crt.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, certFile, keyFile
}

// TestPostfixDeliversOverVerifiedTLS: a Postfix that verifies the sensor's certificate
// against the test CA delivers its always_bcc copy through STARTTLS, and the record says so;
// a Postfix that does not speak TLS is held off by --require-tls, its copy deferred (kept
// and retried), never bounced.
func TestPostfixDeliversOverVerifiedTLS(t *testing.T) {
	caFile, certFile, keyFile := tlsFiles(t)
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
