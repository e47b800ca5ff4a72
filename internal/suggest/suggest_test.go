package suggest

import "testing"

func TestNearest(t *testing.T) {
	keys := []string{"max-message-bytes", "max-age", "smtp-listen", "action"}
	for _, tc := range []struct{ word, want string }{
		{"max-mesage-bytes", "max-message-bytes"}, // one letter missing
		{"smtp-lsiten", "smtp-listen"},            // two letters swapped: two edits
		{"acton", "action"},
		{"max-ages", "max-age"},
		{"listen", ""}, // five edits from smtp-listen
		{"", ""},
		{"zzzzzz", ""},
	} {
		if got := Nearest(tc.word, keys); got != tc.want {
			t.Errorf("Nearest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
	if got := Nearest("ab", []string{"ax", "ay"}); got != "ax" {
		t.Errorf("equally near: %q, want the first, ax", got)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"same", "same", 0}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
