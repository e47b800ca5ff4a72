//go:build e2e

package oracle

import (
	"slices"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// TestCorpusAgainstPython fails on a part of a corpus message that Python's email package
// decodes to bytes no sensor attachment has, unless the difference is one of reading, which
// is counted: Python writes a text part's line breaks as LF (RFC 2046 has them CRLF, as the
// sensor hashes them), hands back the encoded text of a part it cannot decode (the sensor
// decodes plain base64 under a missing or unknown encoding), ends a header at a line without
// a colon, reads a multipart it cannot split as one part, and lists empty parts.
func TestCorpusAgainstPython(t *testing.T) {
	oracle := testkit.PythonEmail(t, testkit.CorpusMessages(t, testkit.CorpusDir(t)))
	tally := newTally()
	eachCorpusRecord(t, func(file, rel string, rec *api.Record) {
		have := attachmentSet(rec)
		for _, part := range oracle[file].PythonParts {
			key := rel + " " + part.Type + " " + part.Filename + " " + part.SHA256
			switch {
			case have[part.SHA256]:
				tally.add("found by both", key)
			case part.Size == 0:
				tally.add("empty in Python", key)
			case have[part.CRLFSHA256]:
				tally.add("Python writes line breaks as LF", key)
			case part.Undecoded:
				tally.add("not decoded by Python (it kept the encoded text)", key)
			case slices.Contains(part.Defects, "MissingHeaderBodySeparatorDefect"):
				// A header line without a colon: Python ends the header there; the sensor
				// (as Rspamd and enmime) reads a lost fold when a Content- field follows.
				tally.add("Python ended the part's header at a line without a colon", key)
			case strings.HasPrefix(part.Type, "multipart/"):
				tally.add("a multipart Python read as one part", key)
			default:
				t.Errorf("%s: Python decodes a %s part %q to sha256 %s (%d bytes); no sensor attachment has it",
					rel, part.Type, part.Filename, part.SHA256, part.Size)
				tally.add("missed", key)
			}
		}
	})
	tally.log(t, "Python's attachments")
}
