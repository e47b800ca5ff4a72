//go:build e2e

package oracle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
)

// TestEvasionOracles runs every evasion case through the sensor and the three oracles, and
// fails when an oracle finds the case's hidden link or attachment and the sensor does not.
// The table it logs says who found what.
func TestEvasionOracles(t *testing.T) {
	cases := testkit.EvasionCases()
	if len(cases) == 0 {
		t.Fatal("no evasion cases")
	}
	dir := t.TempDir()
	files := make([]string, len(cases))
	for i, c := range cases {
		files[i] = filepath.Join(dir, fmt.Sprintf("%03d-%s.eml", i, c.Name))
		if err := os.WriteFile(files[i], c.Message, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rspamd := testkit.Rspamd(t, files)
	python := testkit.PythonEmail(t, files)
	p, err := parser.New(parser.Options{})
	if err != nil {
		t.Fatal(err)
	}

	table := [][]string{{"case", "sensor", "rspamd", "python", "enmime"}}
	for i, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			rec, err := p.Parse(bytes.NewReader(c.Message))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			sensor := sensorFinds(rec, c)
			row := []string{c.Name, sensor.String()}
			for _, o := range []struct {
				name  string
				f     testkit.Findings
				links bool // it extracts links; the others are searched for the link as text
			}{
				{"rspamd", rspamd[files[i]], true},
				{"python", python[files[i]], false},
				{"enmime", testkit.Enmime(t, c.Message), false},
			} {
				got := oracleFinds(o.f, o.links, c)
				row = append(row, got.String())
				if got.link == found && sensor.link != found {
					t.Errorf("%s finds the link %s (client: %s); the sensor does not", o.name, c.Link, c.Client)
				}
				if got.attachment == found && sensor.attachment != found {
					t.Errorf("%s finds the attachment (sha256 %s; client: %s); the sensor does not",
						o.name, testkit.SHA256Hex(c.Attachment), c.Client)
				}
			}
			table = append(table, row)
		})
	}
	t.Logf("who finds the hidden link / attachment (yes, no, - when the case hides none):\n%s", formatTable(table))
}

// outcome is whether a parser found what a case hides: found, missed, or notHidden when
// the case hides no such thing.
type outcome int

const (
	notHidden outcome = iota
	found
	missed
)

func (o outcome) String() string { return [...]string{"-", "yes", "no"}[o] }

// finds is one parser's outcome for a case's link and attachment.
type finds struct{ link, attachment outcome }

func (f finds) String() string { return f.link.String() + " / " + f.attachment.String() }

func outcomeOf(hidden, ok bool) outcome {
	switch {
	case !hidden:
		return notHidden
	case ok:
		return found
	}
	return missed
}

// sensorFinds looks for the link among the record's links and what their wrappers hid, and
// for the attachment among the attachments at every depth.
func sensorFinds(rec *api.Record, c testkit.EvasionCase) finds {
	return finds{
		link:       outcomeOf(c.Link != "", hasLink(rec, c.Link)),
		attachment: outcomeOf(c.Attachment != nil, hasAttachment(rec, testkit.SHA256Hex(c.Attachment))),
	}
}

// oracleFinds looks for the link among the links of an oracle that extracts them, or else
// in its decoded text; and for the attachment among its hashes.
func oracleFinds(f testkit.Findings, links bool, c testkit.EvasionCase) finds {
	want := normalizeLink(c.Link)
	var hasLink bool
	if links {
		// Rspamd's raw form too: its text of a link folds "//" in the path.
		hasLink = slices.ContainsFunc(f.URLs, func(u string) bool { return normalizeLink(u) == want }) ||
			slices.ContainsFunc(f.RspamdURLs, func(u testkit.RspamdURL) bool { return normalizeLink(u.Raw) == want })
	} else {
		hasLink = strings.Contains(f.Text, c.Link)
	}
	return finds{
		link:       outcomeOf(c.Link != "", hasLink),
		attachment: outcomeOf(c.Attachment != nil, slices.Contains(f.Hashes, testkit.SHA256Hex(c.Attachment))),
	}
}

// formatTable lines up rows in columns.
func formatTable(rows [][]string) string {
	var widths []int
	for _, r := range rows {
		for i, cell := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(cell))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		for i, cell := range r {
			fmt.Fprintf(&line, "%-*s  ", widths[i], cell)
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return b.String()
}
