package parser

import (
	"bytes"
	"encoding/binary"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/gabriel-vasile/mimetype"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser/archive"
	"github.com/journalsensor/sensor/parser/textfile"
	"github.com/journalsensor/sensor/parser/tnef"
)

// maxContainerDepth bounds containers inside containers (a zip in a TNEF in a zip...).
// Each level holds a 4 KiB sniffing buffer and a decoder's state; the archive and TNEF
// decoders have their own depth caps for their own kinds of nesting.
const maxContainerDepth = 4

// content reads one attachment's decoded bytes into st.attachments[i]: size and hashes
// in one pass, the type sniffed from the first 4 KiB, and, for a container (TNEF, zip),
// the files inside as attachments of their own, listed after it. inspector, when set, is
// asked once the first bytes are read (a uuencoded file's name is on its begin line) for what
// reads the bytes instead (text attachments are scanned for URLs); nil leaves them to the
// container checks. extra receives a copy of the bytes (the blob in content mode). It always
// reads r to its end.
func (st *state) content(r io.Reader, i int, extra io.Writer, depth int, inspector func() func(io.Reader) error) error {
	h := newHashes()
	h.mayFork = true
	defer h.close()
	var sink io.Writer = h
	if extra != nil {
		sink = io.MultiWriter(h, extra)
	}
	tee := io.TeeReader(r, sink)
	// Each content call in progress holds its own sniffing buffer: a container's head is
	// still being read while the files inside it (and the signed content of an opaque
	// S/MIME part) go through content calls of their own.
	k := st.headsInUse
	st.headsInUse++
	defer func() { st.headsInUse-- }()
	for len(st.sc.heads) <= k {
		st.sc.heads = append(st.sc.heads, make([]byte, 4096))
	}
	n, err := io.ReadFull(tee, st.sc.heads[k])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return readFailure(err)
	}
	err = nil
	head := st.sc.heads[k][:n]
	st.attachments[i].DetectedType = sniff(head)
	body := io.MultiReader(bytes.NewReader(head), tee)
	var inspect func(io.Reader) error
	if inspector != nil {
		inspect = inspector()
	}
	switch {
	case inspect != nil:
		err = inspect(body)
	case depth >= maxContainerDepth:
		if isTNEF(head) || archive.IsZip(head) {
			st.limit(limitContainerDepth)
		}
	case isTNEF(head):
		err = st.tnef(body, i, depth)
	case archive.IsZip(head) && st.opts.Attachments != AttachmentsOff:
		err = st.zip(body, i)
	}
	if err != nil {
		return err
	}
	if err := st.drain(tee); err != nil {
		return err
	}
	h.fill(&st.attachments[i])
	return nil
}

// sniffBytes is how much of a file's start the type sniffer sees: mimetype's own default
// read limit. Its JSON and text detectors slow down sharply past it (0.3 ms and 230 KB for
// 4 KiB of JSON-like bytes, against 48 µs at 3 KiB), which a zip of 10,000 small members
// turns into seconds.
const sniffBytes = 3072

// sniff returns the media type the bytes look like, without parameters.
func sniff(head []byte) string {
	t, _, _ := strings.Cut(mimetype.Detect(head[:min(len(head), sniffBytes)]).String(), ";")
	return t
}

// isTNEF checks for the TNEF signature 0x223E9F78 (little-endian), which winmail.dat
// files carry whatever their declared type.
func isTNEF(head []byte) bool {
	return len(head) >= 4 && binary.LittleEndian.Uint32(head) == 0x223E9F78
}

// memberPath names the n-th (from 1) file inside the container attachment at path.
func memberPath(container string, n int) string {
	return container + "/" + strconv.Itoa(n)
}

// tnef lists the files inside a TNEF stream (winmail.dat) as attachments.
func (st *state) tnef(r io.Reader, i, depth int) error {
	cpath := st.attachments[i].Path
	n := 0
	res, err := tnef.Decode(r, tnef.Options{}, func(data io.Reader) (any, error) {
		n++
		if !st.room() {
			return nil, st.drain(data)
		}
		j := len(st.attachments)
		st.attachments = append(st.attachments, api.Attachment{
			Path:      memberPath(cpath, n),
			Container: &api.Container{Kind: "tnef", Path: cpath},
		})
		return j, st.content(data, j, nil, depth+1, nil)
	})
	if res != nil {
		for _, f := range res.Files {
			j, ok := f.Data.(int)
			if !ok {
				continue // an embedded message: its files follow on their own
			}
			a := &st.attachments[j]
			a.Filename = f.Name()
			a.ContentType = strings.ToLower(f.MIMEType)
			a.ContentID = strings.Trim(f.ContentID, "<> ")
		}
		for _, an := range res.Anomalies {
			st.anomaly(tnefPrefix+an.Code, cpath, an.Detail)
		}
		for _, l := range res.LimitsHit {
			st.limit(l)
		}
	}
	return readFailure(err)
}

// textFiles turns uuencoded and yEnc blocks found in a text part into attachments. It is
// the textfile.Handler for one text part.
type textFiles struct {
	st   *state
	path string // the text part's path
	cur  int    // index of the open block's attachment, -1 when none
	n    int    // blocks begun so far
	h    *hashes
	head []byte
}

func (t *textFiles) Begin(kind, name string) io.Writer {
	st := t.st
	if st.opts.Attachments == AttachmentsOff || !st.room() {
		return nil
	}
	t.cur = len(st.attachments)
	t.n++
	st.attachments = append(st.attachments, api.Attachment{
		Path:      memberPath(t.path, t.n),
		Filename:  name,
		Container: &api.Container{Kind: kind, Path: t.path},
	})
	t.h, t.head = newHashes(), t.head[:0]
	return t
}

func (t *textFiles) Write(p []byte) (int, error) {
	if room := 4096 - len(t.head); room > 0 {
		t.head = append(t.head, p[:min(room, len(p))]...)
	}
	return t.h.Write(p)
}

func (t *textFiles) End(b textfile.Block) {
	if t.cur < 0 || t.h == nil {
		return
	}
	a := &t.st.attachments[t.cur]
	t.h.fill(a)
	a.DetectedType = sniff(t.head)
	if !b.Complete {
		t.st.anomaly(anomalyEncodedFileIncomplete, a.Path, b.Kind+" block ended without its end line")
	}
	for _, an := range b.Anomalies {
		t.st.anomaly(anomalyEncodedFileDamaged, a.Path, b.Kind+": "+an)
	}
	t.cur, t.h = -1, nil
}

// zip lists the members of a zip attachment (and of zips inside it) as attachments in a
// zip container. The archive package inflates and hashes members itself, within the
// message's decompressed-bytes budget; members past it are listed unhashed.
func (st *state) zip(r io.Reader, i int) error {
	if st.budget == nil {
		st.budget = archive.NewBudget(st.opts.MaxArchiveBytes)
	}
	cpath := st.attachments[i].Path
	opts := archive.Options{
		MaxMembers: st.opts.MaxArchiveMembers,
		Sniff:      sniff,
	}
	// Members that open in a browser or a text editor are kept (up to the per-message cap)
	// to be read for links once List says which were read whole. Keyed by member path,
	// unique within one List call.
	var texts map[string]*zipText
	if !st.opts.NoURLs {
		opts.Content = func(m *archive.Member) (io.Writer, error) {
			if !readForLinks(m.Name) {
				return nil, nil
			}
			if texts == nil {
				texts = map[string]*zipText{}
			}
			st.zipTextBytes += zipScanCost
			t := &zipText{boundedCopy{used: &st.zipTextBytes, max: maxZipTextBytes}, m.Name}
			t.cut = st.zipTextBytes > maxZipTextBytes
			texts[m.Path] = t
			return &t.boundedCopy, nil
		}
	}
	res, err := archive.List(r, st.budget, opts)
	if res == nil {
		return readFailure(err)
	}
	first := len(st.attachments)
	for _, m := range res.Members {
		if m.Dir {
			continue
		}
		container := cpath
		if m.Parent >= 0 {
			container = cpath + "/" + res.Members[m.Parent].Path
		}
		a := api.Attachment{
			Path:         cpath + "/" + m.Path,
			Filename:     m.Name,
			DetectedType: m.Type,
			Size:         max(m.Size, 0), // -1: neither header said, and it was not inflated
			Encrypted:    m.Encrypted,
			Container:    &api.Container{Kind: "zip", Path: container},
		}
		if m.Hashed {
			a.MD5, a.SHA1, a.SHA256 = m.MD5, m.SHA1, m.SHA256
		}
		if len(st.attachments)-first >= st.opts.MaxArchiveMembers {
			st.limit(archive.LimitMembers)
			break
		}
		if !st.room() {
			break
		}
		st.attachments = append(st.attachments, a)
	}
	for _, an := range res.Anomalies {
		st.anomaly(zipPrefix+an.Code, cpath+"/"+an.Path, an.Detail)
	}
	for _, l := range res.LimitsHit {
		st.limit(l)
	}
	for _, m := range res.Members {
		t := texts[m.Path]
		if t == nil || !m.Hashed || m.Dir {
			continue // bytes of a member not read whole may be anything
		}
		if serr := st.scanZipText(m.Name, t); serr != nil {
			return serr
		}
	}
	return readFailure(err)
}

// maxZipTextBytes bounds the bytes of zip members kept for reading links, per message. They
// wait in memory until List returns, since only then is a member known to be whole; a
// phishing page or a readme is a few KiB.
const maxZipTextBytes = 1 << 20

// zipScanCost is charged against maxZipTextBytes for each member kept, on top of its bytes:
// each read sets up a scanner (the HTML tokenizer alone allocates 4 KiB), and a zip of 10,000
// one-line pages doubled the garbage of its parse and raised its peak RSS by 15 MiB.
const zipScanCost = 4 << 10

// readForLinks reports whether a zip member of this name is read for links: the recipient
// double-clicks it in the desktop's archive view and it opens in a browser, or it is text,
// which we read for links in any attachment.
func readForLinks(name string) bool {
	return opensAsHTML(name) || strings.EqualFold(path.Ext(name), ".txt")
}

// zipText keeps one zip member's bytes, within what is left of maxZipTextBytes for the
// message.
type zipText struct {
	boundedCopy
	name string // as List knew it when the bytes began: the local header's
}

// scanZipText reads a kept member for links. name is the member's final name (the central
// directory's when there is one).
func (st *state) scanZipText(name string, t *zipText) error {
	b := t.b
	if t.cut {
		st.limit(limitZipTextBytes)
		if len(b) == 0 {
			return nil
		}
		// A link cut in two would be listed as a link to somewhere else.
		if k := bytes.LastIndexAny(b, " \t\r\n"); k >= 0 {
			b = b[:k+1]
		}
	}
	r := bytes.NewReader(b)
	// Either name may be the one the recipient's tool shows; a mismatch is an anomaly of its own.
	if opensAsHTML(name) || opensAsHTML(t.name) {
		return st.scanHTMLFile(r)
	}
	return readFailure(st.urls.ScanText(r, api.URLSourceAttachment))
}
