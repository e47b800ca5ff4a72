package parser

import (
	"strings"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser/walker"
)

// isExchange2003Journal reports whether a top-level header marks an Exchange 2000/2003
// envelope journal report. Those predate X-MS-Journal-Report; Exchange stamps the
// content identifier instead (PR_CONTENT_IDENTIFIER "ExJournalReport", which it also
// carries over SMTP as this header).
func isExchange2003Journal(h *walker.Header) bool {
	return strings.EqualFold(strings.TrimSpace(h.Get("Content-Identifier")), "ExJournalReport")
}

// gatewayOf names the secure email gateway whose trace headers are in h, or "". Each
// gateway stamps every message it passes, so the first one found (top of the header, the
// last to handle the message) is the one that sent us the copy.
func gatewayOf(h *walker.Header) string {
	for _, f := range h.Fields {
		name := strings.ToLower(f.Name)
		switch {
		case strings.HasPrefix(name, "x-ironport-"), name == "x-ipas-result":
			return "cisco"
		case strings.HasPrefix(name, "x-proofpoint-"):
			return "proofpoint"
		case name == "x-mc-unique":
			return "mimecast"
		}
	}
	return ""
}

// isGoogleCopy reports whether h shows the message was received by Google Workspace
// before it reached us. X-Gm-Original-To is what an admin's routing or archiving rule adds;
// X-Gm-Spam and X-Gm-Phishy are Gmail's inbound verdicts, which only a message Google
// received (not one a Gmail user merely sent) carries. X-Google-Smtp-Source and
// X-Gm-Message-State are deliberately not enough: Gmail stamps them on everything its users
// send, so they also appear on direct mail from any Gmail sender.
func isGoogleCopy(h *walker.Header) bool {
	return h.Has("X-Gm-Original-To") || h.Has("X-Gm-Spam") || h.Has("X-Gm-Phishy")
}

// noteSource refines the record's source from one header block (the top-level header, and
// the scored message's when that is a different one). A journal kind, set from the top
// level, is never overridden: the report is what arrived. The gateway is recorded whenever
// it is seen.
func (st *state) noteSource(h *walker.Header) {
	if g := gatewayOf(h); g != "" && st.source.Gateway == "" {
		st.source.Gateway = g
	}
	switch st.source.Kind {
	case api.SourceExchangeJournal, api.SourceExchange2003Journal, api.SourceGoogleCopy:
		return
	}
	switch {
	case isGoogleCopy(h):
		st.source.Kind = api.SourceGoogleCopy
	case st.source.Gateway != "":
		st.source.Kind = api.SourceGatewayCopy
	}
}
