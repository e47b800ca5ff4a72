// Package archive lists the members of zip archives read as a stream, as the parser meets
// them inside attachments: one forward pass, never a seek, never the whole archive in memory,
// and a decompression budget that a zip bomb cannot get past.
//
// The forward pass reads each local file header and its data, inflating deflate members to
// hash them. A bounded window of the stream's last bytes is kept, and at the end the central
// directory found through the End Of Central Directory record (or met on the way) is merged
// with what the forward pass saw: it is authoritative for names, sizes, encryption and the
// member count, and every disagreement between the two becomes an anomaly.
//
// Member paths are chains of 1-based member numbers joined by "/": "2" is the second member of
// the outer archive and "2/1" the first member of the archive stored as member "2". Members
// are numbered in the order first seen: local headers in stream order, then central directory
// entries that had no local header, in directory order.
package archive

import (
	"errors"
	"io"
	"math"
)

// Limit names, as they appear in Result.LimitsHit.
const (
	LimitBytes     = "archive_bytes"     // the decompression budget ran out
	LimitMembers   = "archive_members"   // members past Options.MaxMembers were counted, not listed
	LimitDepth     = "archive_depth"     // an archive nested deeper than Options.MaxDepth was not listed
	LimitAnomalies = "archive_anomalies" // anomalies past Options.MaxAnomalies were dropped
)

// Anomaly codes, as they appear in Anomaly.Code.
const (
	AnomalyTruncated                  = "truncated"                    // a header, a member's data or the archive was cut short
	AnomalyBadDeflate                 = "bad_deflate"                  // a member's deflate data is corrupt
	AnomalyDeflateSlack               = "deflate_slack"                // compressed bytes after the end of a member's deflate stream
	AnomalyBadDataDescriptor          = "bad_data_descriptor"          // no data descriptor after a member's deflate stream
	AnomalyBadZip64                   = "bad_zip64"                    // ZIP64 fields missing or out of range
	AnomalyBadEOCD                    = "bad_eocd"                     // the End Of Central Directory record is inconsistent
	AnomalyEOCDMissing                = "eocd_missing"                 // a central directory but no End Of Central Directory record
	AnomalyCentralDirectoryMissing    = "central_directory_missing"    // no central directory at all
	AnomalyCentralDirectoryMismatch   = "central_directory_mismatch"   // the end record points elsewhere than the central directory met
	AnomalyCentralDirectoryUnread     = "central_directory_unread"     // the central directory lies outside the tail window
	AnomalyMultipleCentralDirectories = "multiple_central_directories" // more than one central directory in the stream
	AnomalyEntryCountMismatch         = "entry_count_mismatch"         // the end record's entry count differs from the directory's
	AnomalyCentralOnly                = "central_only"                 // a directory entry with no local header seen
	AnomalyLocalOnly                  = "local_only"                   // a local header the central directory does not list
	AnomalyOverlappingEntries         = "overlapping_entries"          // directory entries that overlap another entry
	AnomalyNameMismatch               = "name_mismatch"                // local header and central directory name a member differently
	AnomalyHeaderMismatch             = "header_mismatch"              // local header and central directory disagree on method, sizes, ...
	AnomalySizeMismatch               = "size_mismatch"                // a member holds another size than declared
	AnomalyCRCMismatch                = "crc_mismatch"                 // a member's CRC-32 is not the declared one
	AnomalyPrependedData              = "prepended_data"               // bytes before the archive shift its offsets
	AnomalyGarbage                    = "garbage"                      // bytes between records that belong to none
	AnomalyTrailingData               = "trailing_data"                // bytes after the End Of Central Directory record
	AnomalyBadUTF8Name                = "bad_utf8_name"                // a name flagged UTF-8 is not
	AnomalyLongName                   = "long_name"                    // a name too long to keep whole was cut
	AnomalyUnsafeName                 = "unsafe_name"                  // a name that would escape an extraction directory
)

// Defaults for Options and NewBudget.
const (
	DefaultBudget       = 64 << 20
	DefaultMaxMembers   = 10000
	DefaultMaxDepth     = 4
	DefaultTailBytes    = 1 << 20
	DefaultMaxAnomalies = 100

	// HeadBytes is how many leading bytes of a member Options.Sniff sees.
	HeadBytes = 4096

	// maxDepthCap bounds MaxDepth whatever the caller asks: every level holds its own
	// buffers and tail window, and Go's stack is not the place for a hostile quine.
	maxDepthCap = 16
	// minTailBytes keeps room for an End Of Central Directory record and its longest comment.
	minTailBytes = eocdLen + 0xffff + zip64LocatorLen + zip64EOCDLen
)

// ErrBudget is the error a member's data reader returns when the decompression budget runs
// out before the member ends.
var ErrBudget = errors.New("archive: decompression budget exhausted")

// Budget is the number of decompressed bytes still allowed. Create one per message and pass
// it to every List call for that message, so the members of all its archives, nested ones
// included, share it. Only inflated output is charged: a stored member costs no more than
// the bytes it occupies in its archive, which were either read from the message or already
// charged when the member holding them was inflated. A Budget is not safe for concurrent use.
type Budget struct {
	left int64
}

// NewBudget returns a budget of n decompressed bytes. As for Options, zero means the default
// (DefaultBudget) and a negative n means no limit.
func NewBudget(n int64) *Budget {
	switch {
	case n == 0:
		n = DefaultBudget
	case n < 0:
		n = math.MaxInt64
	}
	return &Budget{left: n}
}

// Remaining returns the decompressed bytes still allowed.
func (b *Budget) Remaining() int64 { return b.left }

// Options are the limits and hooks of a List call. For each limit, zero means the default
// and a negative value means no limit (the rule of go-message's ReadOptions), within the
// bounds given for MaxDepth and TailBytes.
type Options struct {
	MaxMembers   int // members listed per List call, nested ones included; default 10000
	MaxDepth     int // deepest Member.Depth listed (outer members have depth 0); default 4, at most 16
	TailBytes    int // bytes of the stream's end kept to find the central directory; default 1 MiB (also when negative: a buffer, not a limit), at least the longest end record (64 KiB)
	MaxAnomalies int // anomalies recorded per List call; default 100

	// Sniff, when set, is called with the first bytes (up to HeadBytes) of each member List
	// decompresses, and its answer becomes Member.Type. The parser passes the sniffer it uses
	// for attachments, so members are typed the same way.
	Sniff func(head []byte) string

	// Content, when set, is called when List starts decompressing a member (m is a copy) and
	// returns where to copy the member's bytes, or nil. The bytes written are the whole
	// member only if that member ends up with Hashed set; otherwise discard them. An error
	// from Content or from the writer stops List, which returns it.
	Content func(m *Member) (io.Writer, error)
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = math.MaxInt
		}
	}
	def(&o.MaxMembers, DefaultMaxMembers)
	def(&o.MaxDepth, DefaultMaxDepth)
	if o.TailBytes < 0 {
		// A buffer, not a limit: "no limit" would hold a whole stream in memory.
		o.TailBytes = 0
	}
	def(&o.TailBytes, DefaultTailBytes)
	def(&o.MaxAnomalies, DefaultMaxAnomalies)
	o.MaxDepth = min(o.MaxDepth, maxDepthCap)
	o.TailBytes = max(o.TailBytes, minTailBytes)
	return o
}

// Result is what List found.
type Result struct {
	Members   []Member
	Unlisted  int // members counted but not listed because of MaxMembers
	Anomalies []Anomaly
	LimitsHit []string // Limit* names, each at most once
}

// Anomaly is something malformed, inconsistent or suspicious in an archive. Path is the member
// it concerns, or the nested archive's member path ("" for the outer archive) when it concerns
// a whole archive. Detail never carries member content.
type Anomaly struct {
	Code   string
	Path   string
	Detail string
}

// Member is one entry of an archive.
type Member struct {
	Path           string // see the package comment
	Name           string // from the central directory when there is one, else the local header
	Size           int64  // bytes hashed when Hashed, else the declared uncompressed size; -1 if unknown
	CompressedSize int64  // -1 if unknown
	Method         uint16 // 0 stored, 8 deflate, 99 AES, ...; only 0 and 8 are decompressed
	Encrypted      bool
	Dir            bool
	Depth          int // 0 for members of the outer archive
	Parent         int // index in Result.Members of the member holding this one's archive; -1 at depth 0

	// Hashed says the member was decompressed to its end within the budget; only then are
	// the hashes set, and Size is the number of bytes hashed.
	Hashed            bool
	MD5, SHA1, SHA256 string // lowercase hex
	Type              string // Options.Sniff's answer; "" when not sniffed

	local, central bool    // where the member was seen
	nameIssue      Anomaly // what was wrong with the chosen name, reported once the name is final
}

// IsZip reports whether head, the first bytes of an attachment, start a zip archive the way
// List expects: with a local file header, a spanning marker before one, or the record of an
// empty archive.
func IsZip(head []byte) bool {
	if len(head) < 4 || head[0] != 'P' || head[1] != 'K' {
		return false
	}
	switch le32(head) {
	case sigLocal, sigEOCD:
		return true
	case sigDescriptor, sigSpanned:
		return len(head) >= 8 && le32(head[4:]) == sigLocal
	}
	return false
}

// List reads a zip archive from r to its end and lists its members, nested archives
// included, decompressing no more than b allows (a nil b means a fresh default budget).
// Garbage, truncation and hostile archives give a Result with anomalies, not an error: the
// error is non-nil only when reading r or a hook fails, and the Result then holds what was
// found before. List consumes r to EOF unless reading r or a hook fails.
func List(r io.Reader, b *Budget, opts Options) (*Result, error) {
	if b == nil {
		b = NewBudget(0)
	}
	l := &lister{opts: opts.withDefaults(), budget: b, res: &Result{}}
	lv := l.newLevel(&inputReader{r}, 0, -1, "")
	// The error, when there is one, is an *inputError or a *hookError: both unwrap to the
	// cause, so callers can errors.As through them to their own error types.
	err := l.run(lv)
	return l.res, err
}

// inputError marks a failure to read the caller's stream, so nested levels pass it up
// instead of taking it for the end of a member.
type inputError struct{ err error }

func (e *inputError) Error() string { return "archive: reading input: " + e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// hookError marks a failure of Options.Content or its writer.
type hookError struct{ err error }

func (e *hookError) Error() string { return "archive: content hook: " + e.err.Error() }
func (e *hookError) Unwrap() error { return e.err }

// fatal reports whether err must stop List rather than end one member or one level.
func fatal(err error) bool {
	var ie *inputError
	var he *hookError
	return errors.As(err, &ie) || errors.As(err, &he)
}

// inputReader marks the caller's read errors.
type inputReader struct{ r io.Reader }

func (r *inputReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &inputError{err}
	}
	return n, err
}

// hookWriter marks the Content writer's errors.
type hookWriter struct{ w io.Writer }

func (w hookWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		return n, &hookError{err}
	}
	if n < len(p) {
		return n, &hookError{io.ErrShortWrite}
	}
	return n, nil
}
