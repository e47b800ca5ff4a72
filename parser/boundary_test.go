package parser

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
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

// A spam mailer's multipart: one boundary declared, another opening its one part and a third
// closing it. Walked as declared, the HTML and its links were hidden in the preamble.
func TestBoundaryOpenedAndClosedWithOtherTokensHidLinks(t *testing.T) {
	html := `<html><body><a href="http://calor.example/?v=1">ver</a><img src="http://img.example/a.jpg"></body></html>`
	msg := crlf(`From: a@example.com
To: b@example.com
Subject: oferta
MIME-Version: 1.0
Content-Type: multipart/alternative;
	boundary="--=_HsWzsKV"

----=_GlSzQZU
Content-Type: text/html;
Content-Transfer-Encoding: base64

`) + wrapN(base64.StdEncoding.EncodeToString([]byte(html)), 76, "\r\n") + "\r\n----=_1wyyTH1--\r\n"
	rec := parseString(t, Options{}, msg)
	var got []string
	for _, u := range rec.URLs {
		got = append(got, u.URL)
	}
	if want := "http://calor.example/?v=1 http://img.example/a.jpg"; strings.Join(got, " ") != want {
		t.Errorf("urls %q, want %q", got, want)
	}
	var codes []string
	for _, a := range rec.Anomalies {
		codes = append(codes, a.Code+": "+a.Detail)
	}
	if want := `boundary_recovered: declared "--=_HsWzsKV", used "--=_GlSzQZU", closed by "--=_1wyyTH1"`; strings.Join(codes, "; ") != want {
		t.Errorf("anomalies %q, want %q", codes, want)
	}
	if rec.Message.Structure != "multipart/alternative(text/html)" {
		t.Errorf("structure %q", rec.Message.Structure)
	}
}
