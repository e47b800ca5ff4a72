package bytesize

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"200MiB": 200 << 20, "10GiB": 10 << 30, "512KB": 512_000, "1048576": 1 << 20, "1.5MiB": 3 << 19, "64k": 64 << 10,
		"150MiB": 150 << 20, "10MB": 10_000_000, " 7 B ": 7, "0": 0,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-5MiB", "MiB", "NaN", "Inf", "infMiB", "0x10"} {
		if _, err := Parse(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): %v, want ErrSyntax", bad, err)
		}
	}
	// A float past int64 used to be converted anyway, to whatever the machine made of it.
	for _, big := range []string{"1e19", "8388608TiB", "1e300TiB", "9223372036854775807"} {
		if n, err := Parse(big); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", big, n)
		}
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, 1 << 10, 3 << 19, 200 << 20, 10 << 30, 5 << 40, 1_000_000} {
		s := Format(n)
		if got, err := Parse(s); err != nil || got != n {
			t.Errorf("Parse(Format(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
	if got := Format(200 << 20); got != "200MiB" {
		t.Errorf("Format(200MiB) = %q", got)
	}
}
