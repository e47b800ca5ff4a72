package parser

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

// A message whose declared top-level boundary never occurs is walked by the boundary its
// body really uses: the same links and the same attachment as the well-formed message.
func TestWrongDeclaredBoundaryStillYieldsLinksAndAttachment(t *testing.T) {
	pdf := bytes.Repeat([]byte("%PDF-1.7\n binary \x00\xff\xfe stream\n"), 500)
	good := mixedMessage(pdf)
	bad := strings.Replace(good, "boundary=outer\r\n", "boundary=\"----=_NextPart_declared\"\r\n", 1)
	if bad == good {
		t.Fatal("declared boundary not replaced")
	}
	want := parseString(t, Options{}, good)
	got := parseString(t, Options{}, bad)

	if !reflect.DeepEqual(got.URLs, want.URLs) || len(got.URLs) == 0 {
		t.Errorf("urls\n got %+v\nwant %+v", got.URLs, want.URLs)
	}
	sum := sha256.Sum256(pdf)
	var att *api.Attachment
	for i := range got.Attachments {
		if got.Attachments[i].Path == "2" {
			att = &got.Attachments[i]
		}
	}
	if att == nil || att.SHA256 != hex.EncodeToString(sum[:]) || att.Size != int64(len(pdf)) {
		t.Errorf("attachment %+v, want sha256 %x", att, sum)
	}
	var recovered []api.Anomaly
	for _, a := range got.Anomalies {
		if a.Code == "boundary_recovered" {
			recovered = append(recovered, a)
		}
	}
	if len(recovered) != 1 || recovered[0].Detail != `declared "----=_NextPart_declared", used "outer"` {
		t.Errorf("anomalies %+v", got.Anomalies)
	}
	if len(got.LimitsHit) != 0 {
		t.Errorf("limits %v", got.LimitsHit)
	}
}
