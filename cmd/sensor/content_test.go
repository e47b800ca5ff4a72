package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Content mode end to end: the attachment's bytes reach the receiver as a blob named by
// their sha256 (computed here from the bytes sent), the record names that blob, and the
// spool keeps no copy once it is delivered.
func TestContentModeEndToEnd(t *testing.T) {
	e := startE2E(t, "--attachments", "content")
	payload := randomBytes(t, 300<<10)
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])
	msg := "From: a@example.org\r\nSubject: blob\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n" +
		"Content-Type: application/octet-stream; name=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		wrap(base64.StdEncoding.EncodeToString(payload)) + "--b--\r\n"
	id, _ := e.send("a@example.org", []string{"j@sensor.test"}, msg)
	rec, _, _ := e.await(id)
	atts, _ := rec["attachments"].([]any)
	if len(atts) != 1 || atts[0].(map[string]any)["blob"] != want {
		t.Fatalf("attachments %v, want one naming blob %s", atts, want)
	}
	got, err := os.ReadFile(filepath.Join(e.outDir, "blobs", want))
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("receiver blob: %d bytes, err %v; want the %d bytes sent", len(got), err, len(payload))
	}
	blobDir := filepath.Join(e.dataDir, "spool", "blobs")
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, _ := os.ReadDir(blobDir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d blobs left in the spool after delivery", len(left))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
