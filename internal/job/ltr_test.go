package job

import (
	"slices"
	"testing"

	"github.com/pgvault/pgvault/internal/pg"
)

// TestPlaceArchive: tar archives go to the least loaded target, the
// manifest next to base.tar.
func TestPlaceArchive(t *testing.T) {
	type arch struct {
		name string
		size int64
	}
	cases := []struct {
		targets int
		in      []arch
		want    []int
	}{
		{1, []arch{{"base.tar", 100}, {pg.ManifestName, 1}}, []int{0, 0}},
		{2, []arch{{"16384.tar", 500}, {"base.tar", 100}, {pg.ManifestName, 1}}, []int{0, 1, 1}},
		{2, []arch{{"16384.tar", 50}, {"16385.tar", 500}, {"base.tar", 100}, {pg.ManifestName, 1}}, []int{0, 1, 0, 0}},
		{3, []arch{{"16384.tar", 50}, {"16385.tar", 500}, {"16386.tar", 10}, {"base.tar", 100}, {pg.ManifestName, 1}}, []int{0, 1, 2, 2, 2}},
		{3, []arch{{"base.tar", 100}, {pg.ManifestName, 1}}, []int{0, 0}},
	}
	for _, tc := range cases {
		loads := make([]int64, tc.targets)
		base := -1
		var got []int
		for _, a := range tc.in {
			i := placeArchive(a.name, loads, base)
			if a.name == pg.BaseArchiveName {
				base = i
			}
			loads[i] += a.size
			got = append(got, i)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%d targets, %v: placed %v, want %v", tc.targets, tc.in, got, tc.want)
		}
	}
}
