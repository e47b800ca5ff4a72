//go:build e2e

package oracle

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// enmimeMisreads are corpus messages whose structure enmime reads otherwise than the sensor
// and Rspamd do, with how.
var enmimeMisreads = map[string]string{
	"mail/stalwart-mail-parser/malformed/017.eml": "no ';' before boundary=, so enmime takes the whole body for one part",
}

// undecodable reports whether an enmime error says it could not decode a part's body.
func undecodable(name string) bool { return name == "Malformed Base64" || name == "Content Encoding" }

// TestCorpusAgainstEnmime fails on a part of a corpus message that enmime decodes to bytes no
// sensor attachment has, unless the difference is one of reading, which is counted: enmime
// converts text parts to UTF-8, lists body texts among its parts, hands a journal report's
// original on as a part, and keeps the base64 text of a part it cannot or will not decode.
func TestCorpusAgainstEnmime(t *testing.T) {
	tally := newTally()
	eachCorpusRecord(t, func(file, rel string, rec *api.Record) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		have := attachmentSet(rec)
		for _, part := range testkit.Enmime(t, data).EnmimeParts {
			key := rel + " " + part.Type + " " + part.Filename + " " + part.SHA256 + " " + strings.Join(part.Errors, ",")
			switch {
			case have[part.SHA256]:
				tally.add("found by both", key)
			case part.Size == 0:
				tally.add("empty in enmime", key)
			case part.Converted:
				tally.add("enmime converted the text to UTF-8", key)
			case (part.Type == "" || part.Type == "text/plain" || part.Type == "text/html") && part.Filename == "":
				// enmime lists the body texts beyond the first of each kind; the sensor reads
				// body text for links and lists no body as an attachment.
				tally.add("body text, which the sensor reads for links and does not list", key)
			case part.Type == "message/rfc822" && part.SHA256 == rec.Message.SHA256:
				tally.add("a journal report's original, which the record describes as its message", key)
			case part.Base64Text || slices.ContainsFunc(part.Errors, undecodable):
				tally.add("not decoded by enmime (it kept the encoded text)", key)
			case enmimeMisreads[rel] != "":
				tally.add("read otherwise by enmime: "+enmimeMisreads[rel], key)
			default:
				t.Errorf("%s: enmime decodes a %s part %q to sha256 %s (%d bytes; %v); no sensor attachment has it",
					rel, part.Type, part.Filename, part.SHA256, part.Size, part.Errors)
				tally.add("missed", key)
			}
		}
	})
	tally.log(t, "enmime's attachments")
}
