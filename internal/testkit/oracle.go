package testkit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"
)

// The oracles are other parsers run over the same messages, so that a test can show the
// sensor finds at least the links and attachments they find.

//go:embed oracle/rspamd.lua
var rspamdScript []byte

//go:embed oracle/pyemail.py
var pyEmailScript []byte

// Findings is what one oracle parser saw in one message.
type Findings struct {
	URLs   []string // links as the oracle reports them (Rspamd: u:get_text()); empty for oracles that do not extract links
	Text   string   // the decoded text of every text/plain and text/html part, joined with newlines (for substring checks of a planted link)
	Hashes []string // lowercase hex sha256 of the decoded bytes of every leaf part that is not text/plain or text/html, or that has a filename

	// Rspamd only: the links with what Rspamd says about them, and every MIME part. Its
	// Hashes also hold each part's TrimmedSHA256, so that the line break Rspamd keeps does
	// not hide an attachment it found.
	RspamdURLs  []RspamdURL
	RspamdParts []RspamdPart

	// Python only: the parts behind Hashes, with what tells a miss from a different reading.
	PythonParts []PythonPart
	// enmime only: likewise.
	EnmimeParts []EnmimePart
}

// EnmimePart is one part of enmime's Attachments, Inlines and OtherParts.
type EnmimePart struct {
	Type, Filename string
	Size           int
	SHA256         string
	// Converted: enmime turned the text of the part into UTF-8 from another charset, so its
	// bytes are not the part's.
	Converted bool
	// Base64Text: the content is base64 text, which enmime kept when it could not decode
	// it or did not know to.
	Base64Text bool
	Errors     []string // what enmime noted while reading the part
}

// base64Text matches content that is nothing but base64 text and line breaks.
var base64Text = regexp.MustCompile(`^[A-Za-z0-9+/=\r\n]{16,}$`)

// PythonPart is one leaf part that Python's email package decoded.
type PythonPart struct {
	Type       string `json:"type"`
	Filename   string `json:"filename"`
	Size       int    `json:"size"`
	SHA256     string `json:"sha256"`
	CRLFSHA256 string `json:"crlf_sha256"` // of the bytes with every line break written CRLF
	Undecoded  bool   `json:"undecoded"`   // Python did not decode it and kept the encoded text
	// The defects Python noted on the part, by class name (MissingHeaderBodySeparatorDefect).
	Defects []string `json:"defects"`
}

// RspamdURL is one link from task:get_urls(true, true).
type RspamdURL struct {
	Text     string // u:get_text(), the link as Rspamd normalised it
	Raw      string // u:get_raw(), as it stood in the message
	Host     string
	Protocol string   // "http", "https", "mailto", "ftp", ...
	Flags    []string // e.g. "schemaless", "text", "image", "html_displayed"
}

// Has reports whether Rspamd set flag on the link.
func (u RspamdURL) Has(flag string) bool {
	return slices.Contains(u.Flags, flag)
}

// RspamdPart is one MIME part from task:get_parts(), containers included.
type RspamdPart struct {
	Type       string // lowercase type/subtype
	Filename   string
	CTE        string // the transfer encoding Rspamd decoded, "unknown" when it did not recognise one
	Multipart  bool
	Message    bool
	Attachment bool   // p:is_attachment()
	Len        int    // bytes of decoded content
	SHA256     string // of the decoded content
	RawSHA256  string // of the content before transfer decoding
	// TrimmedSHA256 is of the decoded content without one final line break: Rspamd keeps
	// the line break before a boundary, which RFC 2046 makes part of the boundary.
	TrimmedSHA256 string
}

// Leaf reports whether the part holds content of its own rather than other parts.
func (p RspamdPart) Leaf() bool { return !p.Multipart && !p.Message }

// Rspamd runs Rspamd's message parser (rspamadm lua) over files in one process and returns
// its findings keyed by the path as given.
func Rspamd(tb testing.TB, files []string) map[string]Findings {
	tb.Helper()
	out := runOracle(tb, "rspamadm", "rspamd", "rspamd.lua", rspamdScript, files, func(script, list string) []string {
		return []string{"lua", "-b", script, "-a", list}
	})
	type line struct {
		File  string `json:"file"`
		Error string `json:"error"`
		URLs  []struct {
			Text     string `json:"text"`
			Raw      string `json:"raw"`
			Host     string `json:"host"`
			Protocol string `json:"protocol"`
			Flags    string `json:"flags"`
		} `json:"urls"`
		Parts []struct {
			Type       string `json:"type"`
			Filename   string `json:"filename"`
			CTE        string `json:"cte"`
			Multipart  bool   `json:"multipart"`
			Message    bool   `json:"message"`
			Attachment bool   `json:"attachment"`
			Len        int    `json:"len"`
			SHA256     string `json:"sha256"`
			RawSHA256  string `json:"raw_sha256"`
			Trimmed    string `json:"trimmed_sha256"`
			Text       string `json:"text"`
		} `json:"parts"`
	}
	res := make(map[string]Findings, len(files))
	err := eachJSONLine(out, func(raw []byte) error {
		var l line
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("%.100s: %w", raw, err)
		}
		if l.Error != "" {
			tb.Logf("rspamd could not load %s: %s", l.File, l.Error)
		}
		var f Findings
		var texts []string
		for _, u := range l.URLs {
			f.URLs = append(f.URLs, u.Text)
			var flags []string
			if u.Flags != "" {
				flags = strings.Split(u.Flags, ",")
			}
			f.RspamdURLs = append(f.RspamdURLs, RspamdURL{u.Text, u.Raw, u.Host, u.Protocol, flags})
		}
		for _, p := range l.Parts {
			rp := RspamdPart{p.Type, p.Filename, p.CTE, p.Multipart, p.Message, p.Attachment, p.Len, p.SHA256, p.RawSHA256, p.Trimmed}
			f.RspamdParts = append(f.RspamdParts, rp)
			if isBodyType(p.Type) {
				texts = append(texts, p.Text)
			}
			if rp.Leaf() && (!isBodyType(p.Type) || p.Filename != "") {
				f.Hashes = append(f.Hashes, p.SHA256)
				if p.Trimmed != p.SHA256 {
					f.Hashes = append(f.Hashes, p.Trimmed)
				}
			}
		}
		f.Text = strings.Join(texts, "\n")
		res[l.File] = f
		return nil
	})
	if err != nil {
		tb.Fatalf("reading rspamadm output: %v", err)
	}
	checkAllAnswered(tb, "rspamadm", files, res)
	return res
}

// PythonEmail runs Python's email package (the default policy) over files in one python3
// process and returns its findings keyed by the path as given. It extracts no links.
func PythonEmail(tb testing.TB, files []string) map[string]Findings {
	tb.Helper()
	out := runOracle(tb, "python3", "python3", "pyemail.py", pyEmailScript, files, func(script, list string) []string {
		return []string{script, list}
	})
	res := make(map[string]Findings, len(files))
	err := eachJSONLine(out, func(raw []byte) error {
		var l struct {
			File   string       `json:"file"`
			Error  string       `json:"error"`
			Text   string       `json:"text"`
			Hashes []string     `json:"hashes"`
			Parts  []PythonPart `json:"parts"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Errorf("%.100s: %w", raw, err)
		}
		if l.Error != "" {
			// A message the oracle cannot read is one where it finds nothing.
			tb.Logf("python email could not parse %s: %s", l.File, l.Error)
		}
		res[l.File] = Findings{Text: l.Text, Hashes: l.Hashes, PythonParts: l.Parts}
		return nil
	})
	if err != nil {
		tb.Fatalf("reading python3 output: %v", err)
	}
	checkAllAnswered(tb, "python3", files, res)
	return res
}

// Enmime parses data with enmime v2's ReadEnvelope. It extracts no links. A message enmime
// rejects is logged and yields empty findings: the oracle found nothing in it.
func Enmime(tb testing.TB, data []byte) Findings {
	tb.Helper()
	env, err := enmime.ReadEnvelope(bytes.NewReader(data))
	if err != nil {
		tb.Logf("enmime could not parse the message: %v", err)
		return Findings{}
	}
	f := Findings{Text: env.Text + "\n" + env.HTML}
	for _, parts := range [][]*enmime.Part{env.Attachments, env.Inlines, env.OtherParts} {
		for _, p := range parts {
			f.Hashes = append(f.Hashes, SHA256Hex(p.Content))
			cs := strings.ToLower(p.Charset)
			if p.OrigCharset != "" {
				cs = strings.ToLower(p.OrigCharset)
			}
			ep := EnmimePart{
				Type: p.ContentType, Filename: p.FileName, Size: len(p.Content), SHA256: SHA256Hex(p.Content),
				Converted:  p.TextContent() && cs != "" && cs != "utf-8" && cs != "us-ascii" && cs != "ascii",
				Base64Text: base64Text.Match(bytes.TrimSpace(p.Content)),
			}
			for _, e := range p.Errors {
				ep.Errors = append(ep.Errors, e.Name)
			}
			f.EnmimeParts = append(f.EnmimeParts, ep)
		}
	}
	return f
}

// SHA256Hex is the lowercase hex sha256 of b, as attachments are hashed in records.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func isBodyType(t string) bool { return t == "text/plain" || t == "text/html" }

// runOracle runs an oracle's script over files in one process of tool, with the arguments
// args gives for the script's and the file list's paths, and returns what it printed. A
// missing tool fails the test and names the Debian package that has it; what the tool writes
// to stderr (Rspamd's parse complaints, "got empty text part") is shown only when it fails.
func runOracle(tb testing.TB, tool, pkg, name string, script []byte, files []string, args func(script, list string) []string) []byte {
	tb.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		tb.Fatalf("%s not found: install the Debian package %s (apt-get install %s): %v", tool, pkg, pkg, err)
	}
	dir := tb.TempDir()
	path := writeOracleFile(tb, dir, name, script)
	list := writeOracleFile(tb, dir, "files.txt", []byte(strings.Join(files, "\n")+"\n"))
	var stderr bytes.Buffer
	cmd := exec.Command(tool, args(path, list)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", tool, name, err, LastLines(stderr.String(), 20))
	}
	return out
}

func writeOracleFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// eachJSONLine calls fn with every line of out that is a JSON object; anything else the
// tools print on stdout is ignored.
func eachJSONLine(out []byte, fn func([]byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 256<<20)
	for sc.Scan() {
		if l := sc.Bytes(); len(l) > 0 && l[0] == '{' {
			if err := fn(l); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

// checkAllAnswered fails when the oracle skipped a message: silence would read as "found
// nothing" and make every comparison pass.
func checkAllAnswered(tb testing.TB, tool string, files []string, res map[string]Findings) {
	tb.Helper()
	for _, f := range files {
		if _, ok := res[f]; !ok {
			tb.Fatalf("%s printed nothing for %s", tool, f)
		}
	}
}
