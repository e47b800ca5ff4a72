package parser

import (
	"io"

	"github.com/journalsensor/sensor/api"
)

// pendingBlob is a written attachment blob waiting for the record to be complete.
type pendingBlob struct {
	w   BlobWriter
	sum string
}

// pendingBlobs are the blobs of one record in content mode: written as the attachments
// stream past, committed only once the whole message has been read, so a record that is
// refused leaves no blob behind.
type pendingBlobs []pendingBlob

func (b *pendingBlobs) add(w BlobWriter, sum string) {
	*b = append(*b, pendingBlob{w: w, sum: sum})
}

// commit makes every blob durable. After a failure the rest are aborted.
func (b *pendingBlobs) commit() error {
	for i, p := range *b {
		if err := p.w.Commit(p.sum); err != nil {
			for _, rest := range (*b)[i+1:] {
				rest.w.Abort()
			}
			*b = nil
			return &LocalError{Err: err}
		}
	}
	*b = nil
	return nil
}

// abort discards every blob, and takes the blob references out of attachments: no blob of
// this record will exist.
func (b *pendingBlobs) abort(attachments []api.Attachment) {
	for _, p := range *b {
		p.w.Abort()
	}
	*b = nil
	for i := range attachments {
		attachments[i].Blob = ""
	}
}

// localWriter marks blob write failures as ours, so they are not mistaken for input trouble.
type localWriter struct{ w io.Writer }

func (l localWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		return n, &LocalError{Err: err}
	}
	return n, nil
}
