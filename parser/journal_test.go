package parser

import (
	"reflect"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

func TestJournalSummaryGrammar(t *testing.T) {
	summary := strings.Join([]string{
		"Sender: <boss@example.com>",
		"Subject: =?utf-8?q?Quarterly_r=C3=A9sultats?=",
		"Message-Id: <abc@example.com>",
		"On-Behalf-Of: assistant@example.com",
		"To: alice@example.com",
		"Cc: bob@example.com",
		"BCC: hidden@example.com",
		"Recipient: carol@example.com, Expanded: sales@example.com",
		"Recipient: dave@example.com, Forwarded: old-dave@example.com",
		"Recipient: erin@example.com, Expanded: all@example.com, Forwarded: erin.old@example.com",
		"Some-Future-Line: ignored",
		"not a summary line",
		"Recipient: ",
		"",
	}, "\r\n")
	var j api.Journal
	if err := readJournalSummary(strings.NewReader(summary), &j, 100, func(string) {}); err != nil {
		t.Fatal(err)
	}
	want := api.Journal{
		Sender:     "boss@example.com",
		Subject:    "Quarterly résultats",
		MessageID:  "<abc@example.com>",
		OnBehalfOf: "assistant@example.com",
		Recipients: []api.JournalRecipient{
			{Address: "alice@example.com", Type: "to"},
			{Address: "bob@example.com", Type: "cc"},
			{Address: "hidden@example.com", Type: "bcc"},
			{Address: "carol@example.com", Type: "recipient", ExpandedFrom: "sales@example.com"},
			{Address: "dave@example.com", Type: "recipient", ForwardedFrom: "old-dave@example.com"},
			{Address: "erin@example.com", Type: "recipient", ExpandedFrom: "all@example.com", ForwardedFrom: "erin.old@example.com"},
		},
	}
	if !reflect.DeepEqual(j, want) {
		t.Errorf("got  %+v\nwant %+v", j, want)
	}
}

func TestJournalSummaryRecipientCap(t *testing.T) {
	var b strings.Builder
	for range 10 {
		b.WriteString("To: x@example.com\n")
	}
	var j api.Journal
	var limits []string
	if err := readJournalSummary(strings.NewReader(b.String()), &j, 3, func(l string) { limits = append(limits, l) }); err != nil {
		t.Fatal(err)
	}
	if len(j.Recipients) != 3 || len(limits) == 0 || limits[0] != "journal_recipients" {
		t.Errorf("recipients %d, limits %v", len(j.Recipients), limits)
	}
}

func TestJournalSummarySkipsOverlongLines(t *testing.T) {
	in := "To: " + strings.Repeat("a", 1_000_000) + "@example.com\nTo: ok@example.com\n"
	var j api.Journal
	if err := readJournalSummary(strings.NewReader(in), &j, 100, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if len(j.Recipients) != 1 || j.Recipients[0].Address != "ok@example.com" {
		t.Errorf("got %d recipients, want only ok@example.com", len(j.Recipients))
	}
}
