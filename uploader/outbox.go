package uploader

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/journalsensor/sensor/uploader/spool"
)

// outbox is the file:// pipeline: each batch becomes DIR/<batch-id>.ndjson, uncompressed so
// that cat and jq work on it. Files appear whole: they are written under a name starting with
// "." and renamed once fsync'd, so a reader that skips dot files never sees a partial batch.
type outbox struct {
	u   *Uploader
	dir string
}

var _ sender = (*outbox)(nil)

const outboxDirPerm = 0o700

func newOutbox(u *Uploader, p *url.URL) (*outbox, error) {
	if p.Host != "" && p.Host != "localhost" {
		return nil, fmt.Errorf("uploader: URL: file URL with host %q: want file:///absolute/dir", p.Host)
	}
	if p.Path == "" || !filepath.IsAbs(p.Path) {
		return nil, fmt.Errorf("uploader: URL: file URL path %q: want file:///absolute/dir", p.Path)
	}
	dir := filepath.Clean(p.Path)
	if err := os.MkdirAll(dir, outboxDirPerm); err != nil {
		return nil, fmt.Errorf("uploader: URL: %w", err)
	}
	o := &outbox{u: u, dir: dir}
	o.removeUnfinished()
	return o, nil
}

// removeUnfinished deletes temp files a crash left in the outbox. Only names this package makes
// are touched: the directory may be shared with whatever consumes the outbox.
func (o *outbox) removeUnfinished() {
	matches, err := filepath.Glob(filepath.Join(o.dir, ".*.ndjson.tmp*"))
	if err != nil {
		return // only ErrBadPattern, and the pattern is constant
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			o.u.log.Warn("outbox: could not remove unfinished file", "file", m, "error", err)
			continue
		}
		o.u.log.Warn("outbox: removed unfinished file left by a crash", "file", m)
	}
}

// corruptError marks a batch file that cannot be decompressed: writing it again cannot help.
type corruptError struct{ err error }

func (e corruptError) Error() string { return "batch file is corrupt: " + e.err.Error() }
func (e corruptError) Unwrap() error { return e.err }

type tagReads struct{ r io.Reader }

func (t tagReads) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = corruptError{err}
	}
	return n, err
}

func (o *outbox) send(_ context.Context, b spool.Batch) (verdict, error) {
	start := time.Now()
	o.u.update(func(s *Stats) { s.Attempts++ })
	v, err := o.write(b)
	attrs := []any{"batch", b.ID, "records", b.Records, "bytes", b.Bytes,
		"duration", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		o.u.noteFailure(err)
		return verdict{}, err
	}
	if !v.delivered {
		o.u.noteFailure(errors.New(v.reason))
		return v, nil
	}
	o.u.log.Info("batch written to outbox", append(attrs, "dir", o.dir)...)
	return v, nil
}

func (o *outbox) write(b spool.Batch) (verdict, error) {
	f, err := o.u.sp.OpenBatch(b.ID)
	if err != nil {
		return verdict{}, err
	}
	defer func() {
		// Read-only: a failed close loses nothing.
		_ = f.Close()
	}()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return verdict{reason: corruptError{err}.Error()}, nil
	}
	// Recreated every time: an operator emptying the outbox may remove the directory too.
	if err := os.MkdirAll(o.dir, outboxDirPerm); err != nil {
		return verdict{}, fmt.Errorf("outbox: %w", err)
	}
	dst := filepath.Join(o.dir, b.ID+".ndjson")
	err = spool.WriteFileAtomic(o.dir, "."+b.ID+".ndjson.tmp*", dst, func(w io.Writer) error {
		_, err := io.Copy(w, tagReads{zr})
		return err
	})
	var corrupt corruptError
	if errors.As(err, &corrupt) {
		return verdict{reason: corrupt.Error()}, nil
	}
	if err != nil {
		return verdict{}, fmt.Errorf("outbox: %w", err)
	}
	return verdict{delivered: true}, nil
}
