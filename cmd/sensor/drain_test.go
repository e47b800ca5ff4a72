package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
	"github.com/journalsensor/sensor/sensor"
	"github.com/journalsensor/sensor/spool"
)

// spoolRecords commits n messages to the spool under dataDir through the intake, as serve's
// doors do, and returns their record ids. Nothing uploads them.
func spoolRecords(t *testing.T, dataDir string, n int) []string {
	t.Helper()
	sp, err := spool.Open(filepath.Join(dataDir, "spool"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parser.New(parser.Options{Attachments: parser.AttachmentsMetadata, CRLFInput: true})
	if err != nil {
		t.Fatal(err)
	}
	in := sensor.NewIntake(sensor.IntakeConfig{SensorID: "replica-3", Version: "v-test"}, p, sp, nil)
	var ids []string
	for i := range n {
		env := &sensor.Envelope{Transport: api.TransportSMTP, Conn: fmt.Sprintf("conn-%d", i), ClientIP: "127.0.0.1",
			ClientPort: 40000 + i, HELO: "client.drain.test", MailFrom: "alice@example.org", RcptTo: []string{"journal@example.net"}}
		msg := fmt.Sprintf("From: alice@example.org\r\nTo: bob@example.net\r\nSubject: drain %d\r\nMessage-ID: <drain-%d@example.org>\r\n\r\nsee https://example.com/%d\r\n", i, i, i)
		res, o := in.Reserve(env)
		if o.Kind != sensor.Accepted {
			t.Fatalf("reserve: %+v", o)
		}
		o = in.Receive(env, res, strings.NewReader(msg))
		res.Release()
		if o.Kind != sensor.Accepted {
			t.Fatalf("message %d: %+v", i, o)
		}
		ids = append(ids, o.ID)
	}
	return ids
}

// heldAddr is an address this test listens on, so that a command that tried to listen there
// would fail: drain must not open a door.
func heldAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// A replica being decommissioned: its spool holds records the pipeline never got. sensor
// drain delivers every one to the real receiver over HTTPS, leaves the spool empty, exits 0,
// and takes no mail meanwhile.
func TestDrainDeliversTheWholeSpoolAndExits(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	ids := spoolRecords(t, dataDir, 40)

	pipe := testkit.StartPipeline(t, dir, "drain-token", nil)
	outDir := pipe.OutDir

	held := heldAddr(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"drain", "--data-dir", dataDir, "--pipeline-url", pipe.URL,
		"--pipeline-token-file", pipe.TokenFile, "--pipeline-ca-file", pipe.CAFile,
		"--smtp-listen", held, "--admin-listen", held, "--drain-timeout", "30s"}, nil, &stdout, &stderr, noEnv)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "spool drained") {
		t.Errorf("no \"spool drained\" in the log:\n%s", stderr.String())
	}
	got, err := os.ReadFile(filepath.Join(outDir, "records.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !bytes.Contains(got, []byte(`"id":"`+id+`"`)) {
			t.Errorf("record %s never reached the receiver", id)
		}
	}
	sp, err := spool.Open(filepath.Join(dataDir, "spool"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := sp.Usage(); u.Records != 0 || u.Batches != 0 || u.DeadLetters != 0 {
		t.Errorf("spool after the drain: %+v, want it empty", u)
	}
}

// With the pipeline down, drain gives up at --drain-timeout, exits 1 and says how much is
// left; what is left stays in the spool for a later drain or serve.
func TestDrainWithThePipelineDownTimesOutAndSaysWhatIsLeft(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	spoolRecords(t, dataDir, 5)
	caFile, _ := testkit.NewCA(t, dir)
	down := heldAddr(t) // accepts TCP, never speaks TLS: a pipeline that does not answer
	var stdout, stderr bytes.Buffer
	code := run([]string{"drain", "--data-dir", dataDir, "--pipeline-url", "https://" + down,
		"--pipeline-ca-file", caFile, "--drain-timeout", "1s"}, nil, &stdout, &stderr, noEnv)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	m := regexp.MustCompile(`(\d+) records remain in \S+ \((\d+) not yet in a batch, (\d+) in (\d+) batches\)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("stderr does not say what is left:\n%s", stderr.String())
	}
	n := make([]int, len(m))
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.Atoi(m[i])
	}
	if n[1] != 5 || n[2]+n[3] != 5 {
		t.Errorf("drain said %q, want 5 records left in all", m[0])
	}
	sp, err := spool.Open(filepath.Join(dataDir, "spool"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := sp.Usage(); u.Records != n[2] || u.Batches != n[4] {
		t.Errorf("drain said %q; the spool holds %d records not in a batch and %d batches", m[0], u.Records, u.Batches)
	}
}

// A --data-dir with no spool is most likely mistyped: drain must not report it drained.
func TestDrainRefusesADataDirWithoutASpool(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"drain", "--data-dir", missing}, nil, &stdout, &stderr, noEnv); code != 2 {
		t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("drain created %s", missing)
	}
}

// drain refuses a data directory a running serve holds: both would take the spool for their
// own, and drain would report "drained" while serve kept filling it.
func TestDrainRefusesTheDataDirOfARunningServe(t *testing.T) {
	e := startE2E(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"drain", "--data-dir", e.dataDir, "--drain-timeout", "2s"}, nil, &stdout, &stderr, noEnv)
	if code == 0 || !strings.Contains(stderr.String(), "in use by another sensor process") {
		t.Errorf("drain beside serve: exit %d, stderr:\n%s", code, stderr.String())
	}
}
