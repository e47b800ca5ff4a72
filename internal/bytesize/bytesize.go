// Package bytesize reads and writes sizes such as "200MiB", "10GiB", "512KB" or "1048576":
// the spelling of every size the sensor's configuration takes, flags and access groups alike.
package bytesize

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// units are tried in order, so that "MiB" is not read as "B" after "Mi".
var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ErrSyntax is what Parse returns for anything that is not a size; its text says what to
// write instead.
var ErrSyntax = errors.New("not a size: want a number with an optional unit, such as 200MiB or 10GiB")

// Parse reads a size: a number (fractions allowed) with an optional unit, KiB, MiB, GiB and
// TiB in powers of 1024, KB, MB, GB and TB in powers of 1000, K, M and G as their binary
// kin; case is ignored. It refuses negative sizes and sizes past what an int64 holds.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	// ParseFloat also takes "NaN" and "Inf", whose conversion to an integer is no number.
	if err != nil || n < 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, ErrSyntax
	}
	v := n * float64(mult)
	if v >= math.MaxInt64 {
		return 0, errors.New("too large a size: at most 8EiB")
	}
	return int64(v), nil
}

// Format writes n in the largest binary unit that divides it, or as a plain number.
func Format(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
