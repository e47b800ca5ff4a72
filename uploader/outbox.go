package uploader

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/journalsensor/sensor/internal/atomicfile"
	"github.com/journalsensor/sensor/spool"
)

// outbox is the file:// pipeline: each batch becomes DIR/<batch-id>.ndjson, uncompressed so
// that cat and jq work on it, and the blobs it names DIR/blobs/<sha256>, written before it.
// Files appear whole: they are written under a name starting with "." and renamed once
// fsync'd, so a reader that skips dot files never sees a partial batch or blob.
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
	blobs, err := filepath.Glob(filepath.Join(o.dir, outboxBlobs, ".*.tmp*"))
	if err != nil {
		return
	}
	for _, m := range append(matches, blobs...) {
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
	if err := o.copyBlobs(b); err != nil {
		return verdict{}, err
	}
	dst := filepath.Join(o.dir, b.ID+".ndjson")
	err = atomicfile.WriteFile(o.dir, "."+b.ID+".ndjson.tmp*", dst, func(w io.Writer) error {
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

const outboxBlobs = "blobs"

// mismatchError marks a spool blob whose bytes no longer hash to its name: copying it again
// cannot help, so it is refused like a blob the pipeline will not take.
type mismatchError struct{ got string }

func (e mismatchError) Error() string { return "blob content hashes to " + e.got }

// copyBlobs puts the blobs batch b names into DIR/blobs/ before the batch itself. A blob
// already there is not copied again: its name is its content.
func (o *outbox) copyBlobs(b spool.Batch) error {
	if b.Blobs == 0 {
		return nil
	}
	sums, err := o.u.sp.BatchBlobs(b.ID)
	if err != nil || len(sums) == 0 {
		return err
	}
	dir := filepath.Join(o.dir, outboxBlobs)
	if err := os.MkdirAll(dir, outboxDirPerm); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	for _, sum := range sums {
		if err := o.copyBlob(b, dir, sum); err != nil {
			return err
		}
	}
	return nil
}

func (o *outbox) copyBlob(b spool.Batch, dir, sum string) error {
	u := o.u
	dst := filepath.Join(dir, sum)
	if _, err := os.Lstat(dst); err == nil {
		u.update(func(s *Stats) { s.BlobsPresent++ })
		return nil
	}
	f, size, err := u.sp.OpenBlob(sum)
	if errors.Is(err, fs.ErrNotExist) {
		u.missingBlob(b, sum)
		return nil
	}
	if err != nil {
		return err
	}
	defer func() {
		_ = f.Close() // read-only
	}()
	err = atomicfile.WriteFile(dir, "."+sum+".tmp*", dst, func(w io.Writer) error {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), f); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			return mismatchError{got}
		}
		return nil
	})
	var mismatch mismatchError
	if errors.As(err, &mismatch) {
		return u.refuseBlob(b, sum, size, 0, mismatch.Error())
	}
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	u.update(func(s *Stats) {
		s.BlobsUploaded++
		s.BlobBytesUploaded += size
	})
	return nil
}
