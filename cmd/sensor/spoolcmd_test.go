package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/spool"
)

// `sensor spool cat` prints each record as one NDJSON line: all of them, including those in
// the log already copied into a batch, or with --pending each undelivered one once; `ls`
// lists the segment and the batch.
func TestSpoolCatAndLs(t *testing.T) {
	data := t.TempDir()
	sp, err := spool.Open(filepath.Join(data, "spool"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 5 {
		id := ulid.Make().String()
		line := fmt.Sprintf(`{"id":%q,"n":%d}`, id, i)
		if err := sp.Commit(id, []byte(line)); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	pending, err := sp.Pending()
	if err != nil || len(pending) != 5 {
		t.Fatalf("Pending = %d groups, %v", len(pending), err)
	}
	b, err := sp.FormBatch(pending[:2])
	if err != nil || b.Records != 2 {
		t.Fatalf("FormBatch = %+v, %v", b, err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}

	cat := func(args ...string) []string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append([]string{"spool", "cat", "--data-dir", data}, args...), nil, &out, &errOut, noEnv); code != 0 {
			t.Fatalf("spool cat %v: exit %d: %s", args, code, errOut.String())
		}
		return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	}
	// The log's 5 (2 of them batched) first, then the batch's 2.
	if got, want := cat(), append(slices.Clone(lines), lines[:2]...); !slices.Equal(got, want) {
		t.Errorf("spool cat =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The 3 not yet batched from the log, then the batch's 2.
	if got, want := cat("--pending"), append(slices.Clone(lines[2:]), lines[:2]...); !slices.Equal(got, want) {
		t.Errorf("spool cat --pending =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"spool", "ls", "--data-dir", data}, nil, &out, &errOut, noEnv); code != 0 {
		t.Fatalf("spool ls: exit %d: %s", code, errOut.String())
	}
	var rows []string
	for _, l := range strings.Split(out.String(), "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	// The segment: 5 records, 3 of them not yet batched, 1 MiB allocated.
	for _, want := range []string{"segment 00000000000000000001.seg 5 3 1048576", "batch " + b.ID + " 2", "log batched up to 1:"} {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, want) }) {
			t.Errorf("spool ls has no row starting %q:\n%s", want, out.String())
		}
	}
}

func TestSpoolCmdErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"spool"}, 2, "sensor spool ls"},
		{[]string{"spool", "rm"}, 2, "sensor spool cat"},
		{[]string{"spool", "cat", "--data-dir", filepath.Join(t.TempDir(), "nope")}, 1, "give serve's --data-dir"},
		{[]string{"spool", "ls", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"spool", "ls", "--pending"}, 2, "flag provided but not defined: -pending"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, nil, &out, &errOut, noEnv)
		if code != tc.code || !strings.Contains(errOut.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d saying %q", tc.args, code, errOut.String(), tc.code, tc.says)
		}
	}
}
