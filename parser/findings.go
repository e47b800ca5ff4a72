package parser

import (
	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser/urls"
)

// findings is what the walk has found for the record so far: the attachments, the URLs,
// the anomalies and the limits hit. Every part of the walk adds to it, so state embeds it.
type findings struct {
	maxAnomalies   int
	maxAttachments int

	attachments []api.Attachment
	urls        *urls.Collector
	anomalies   []api.Anomaly
	limits      []string
}

func (f *findings) anomaly(code, path, detail string) {
	if len(f.anomalies) >= f.maxAnomalies {
		f.limit(limitAnomalies)
		return
	}
	f.anomalies = append(f.anomalies, api.Anomaly{Code: code, Path: path, Detail: detail})
}

func (f *findings) limit(name string) {
	for _, l := range f.limits {
		if l == name {
			return
		}
	}
	f.limits = append(f.limits, name)
}

// room reports whether another attachment may be listed, and names the limit when not.
// One cap covers every source (MIME leaves, attached messages, archive and TNEF members,
// uuencoded blocks), so no combination of them can multiply the record's size.
func (f *findings) room() bool {
	if len(f.attachments) < f.maxAttachments {
		return true
	}
	f.limit(limitAttachments)
	return false
}

// fill puts the findings into rec. It is the last step of the record: the URL collector's
// limits join the record's own here.
func (f *findings) fill(rec *api.Record) {
	rec.Attachments = f.attachments
	rec.URLs = f.urls.URLs()
	for _, l := range f.urls.LimitsHit() {
		f.limit(l)
	}
	rec.Anomalies = f.anomalies
	rec.LimitsHit = f.limits
}
