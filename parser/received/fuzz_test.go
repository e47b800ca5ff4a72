package received

import "testing"

// FuzzParse checks that any input gives well-formed fields. Bounded time is TestLongValue's
// job: timings under the fuzzer are too noisy to assert.
func FuzzParse(f *testing.F) {
	for _, tc := range shapes {
		f.Add(tc.in)
	}
	f.Add("from a (b [IPv6:::ffff:1.2.3.4%x]) by c; Mon Jan  1 10:00:00 2024")
	f.Add("from a ((((x) by b; 1 Jan 2024 10:00 GMT+01:00")
	f.Fuzz(func(t *testing.T, in string) {
		r := Parse(in)
		checkInvariants(t, in, r)
		if d, ok := ParseDate(in); ok != (d != "") {
			t.Fatalf("ParseDate(%q) = %q, %v", in, d, ok)
		}
	})
}
