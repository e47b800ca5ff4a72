package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	. "github.com/journalsensor/sensor/internal/atomicfile"
	"github.com/journalsensor/sensor/internal/testkit"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.ndjson")
	if err := WriteFile(dir, ".out.*", dst, func(w io.Writer) error {
		_, err := io.WriteString(w, "{}\n")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(dst); err != nil || string(got) != "{}\n" {
		t.Errorf("dst = %q, %v", got, err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dst mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	fillErr := errors.New("fill failed")
	err := WriteFile(dir, ".other.*", filepath.Join(dir, "other"), func(w io.Writer) error {
		_, _ = io.WriteString(w, "partial")
		return fillErr
	})
	if !errors.Is(err, fillErr) {
		t.Errorf("WriteFile = %v, want the fill error", err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"out.ndjson"}) {
		t.Errorf("dir = %v, want only the first file", got)
	}
}

// TestWriteFailureLeavesNothing fails each step in turn: the error names the fault, and
// neither the temp file nor dst is left, even when the rename had already happened.
func TestWriteFailureLeavesNothing(t *testing.T) {
	for _, step := range []string{"create", "write", "fsync", "close", "rename", "syncdir"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			tmp := filepath.Join(dir, "tmp")
			if err := os.Mkdir(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "dst")
			err := Write(testkit.FaultFS{Step: step}, tmp, "x.*", dst, func(w io.Writer) error {
				_, err := io.WriteString(w, "data\n")
				return err
			})
			if !errors.Is(err, testkit.ErrInjected) {
				t.Fatalf("Write = %v, want the injected %s failure", err, step)
			}
			if left := names(t, tmp); len(left) != 0 {
				t.Errorf("tmp/ = %v, want empty", left)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dst after a failed write: %v, want it absent", err)
			}
		})
	}
}

// TestWriteRenameLeavesDirectoryUnsynced checks that WriteRename does not fsync the
// directory, so that a group of writes can share one SyncDir.
func TestWriteRenameLeavesDirectoryUnsynced(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "dst")
	if err := WriteRename(testkit.FaultFS{Step: "syncdir"}, dir, ".x.*", dst, func(w io.Writer) error {
		_, err := io.WriteString(w, "data\n")
		return err
	}); err != nil {
		t.Fatalf("WriteRename = %v, want no directory fsync (the fault would fire)", err)
	}
	if got, err := os.ReadFile(dst); err != nil || string(got) != "data\n" {
		t.Errorf("dst = %q, %v", got, err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
