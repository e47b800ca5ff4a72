package parser

import (
	"math"
	"testing"
)

// TestOptionsDefaults pins the defaults, which are meant for real mail, and the rule that a
// negative limit means no limit.
func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	got.Logger = nil
	want := Options{
		MaxDepth:             64,
		MaxParts:             10000,
		MaxHeaderBytes:       1 << 20,
		MaxLineLength:        256 << 10,
		MaxMessageDepth:      8,
		MaxAttachments:       10000,
		MaxArchiveMembers:    10000,
		MaxArchiveBytes:      64 << 20,
		MaxURLs:              10000,
		MaxURLLength:         8192,
		MaxAnomalies:         1000,
		MaxJournalRecipients: 100000,
		MaxStructureBytes:    4096,
	}
	if got != want {
		t.Errorf("defaults\n got %+v\nwant %+v", got, want)
	}

	set := Options{MaxDepth: 3, MaxParts: 5, MaxArchiveBytes: 7, MaxURLs: 9}.withDefaults()
	if set.MaxDepth != 3 || set.MaxParts != 5 || set.MaxArchiveBytes != 7 || set.MaxURLs != 9 {
		t.Errorf("positive limits changed: %+v", set)
	}

	none := Options{
		MaxDepth: -1, MaxParts: -1, MaxHeaderBytes: -1, MaxLineLength: -1, MaxMessageDepth: -1,
		MaxAttachments: -1, MaxArchiveMembers: -1, MaxArchiveBytes: -1, MaxURLs: -1,
		MaxURLLength: -1, MaxAnomalies: -1, MaxJournalRecipients: -1, MaxStructureBytes: -1,
	}.withDefaults()
	for name, v := range map[string]int{
		"MaxDepth": none.MaxDepth, "MaxParts": none.MaxParts, "MaxHeaderBytes": none.MaxHeaderBytes,
		"MaxLineLength": none.MaxLineLength, "MaxMessageDepth": none.MaxMessageDepth,
		"MaxAttachments": none.MaxAttachments, "MaxArchiveMembers": none.MaxArchiveMembers,
		"MaxAnomalies": none.MaxAnomalies, "MaxJournalRecipients": none.MaxJournalRecipients,
		"MaxStructureBytes": none.MaxStructureBytes,
	} {
		if v != math.MaxInt {
			t.Errorf("negative %s became %d, want no limit", name, v)
		}
	}
	if none.MaxArchiveBytes != math.MaxInt64 {
		t.Errorf("negative MaxArchiveBytes became %d", none.MaxArchiveBytes)
	}
	// The URL collector reads a negative limit as no limit itself.
	if none.MaxURLs != -1 || none.MaxURLLength != -1 {
		t.Errorf("negative URL limits became %d and %d", none.MaxURLs, none.MaxURLLength)
	}

	// With no limits at all, a message still parses.
	rec := parseString(t, Options{MaxDepth: -1, MaxParts: -1, MaxURLs: -1, MaxURLLength: -1, MaxStructureBytes: -1},
		mixedMessage([]byte("%PDF-1.4 fake")))
	if len(rec.Attachments) == 0 || len(rec.LimitsHit) > 0 {
		t.Errorf("unlimited parse: %d attachments, limits %v", len(rec.Attachments), rec.LimitsHit)
	}
}
