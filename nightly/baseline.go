package nightly

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/reports"
)

// A baseline is the results of one release, stored flat as
// BASELINES/<release>/<drill>-<profile>-<n>.json so that a CI cache or
// artefact store can keep the folder and `firedrill compare` can read it.

var releaseName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// SaveBaseline copies every result of from (a nightly folder, a folder of
// results, or a run folder) to baselines/<release>/, labelled release: the
// name a baseline is saved as is the release it stands for, whatever label
// its runs recorded (a commit, "-dirty" after a benchmark). An existing
// baseline of that release is replaced only with force; from may be that
// baseline itself, to relabel it. It returns the folder and the number of
// results stored.
func SaveBaseline(baselines, release, from string, force bool) (string, int, error) {
	if !releaseName.MatchString(release) {
		return "", 0, fmt.Errorf("baseline save: release %q: use letters, digits, '.', '_', '+' and '-' (such as v1.4)", release)
	}
	files, err := resultFiles(from)
	if err != nil {
		return "", 0, fmt.Errorf("baseline save: %w", err)
	}
	// Every result is read before anything is removed: a malformed file is
	// not stored, and from may be the folder being replaced.
	rs := make([]*reports.Result, 0, len(files))
	for _, f := range files {
		r, err := reports.ReadResult(f)
		if err != nil {
			return "", 0, fmt.Errorf("baseline save: %w", err)
		}
		r.Release = release
		rs = append(rs, r)
	}
	dst := filepath.Join(baselines, release)
	if _, err := os.Stat(dst); err == nil {
		if !force {
			return "", 0, fmt.Errorf("baseline save: %s exists: pass --force to replace it", dst)
		}
		if err := os.RemoveAll(dst); err != nil {
			return "", 0, fmt.Errorf("baseline save: %w", err)
		}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", 0, fmt.Errorf("baseline save: %w", err)
	}
	seen := map[string]int{}
	for _, r := range rs {
		seen[r.Key()]++
		name := fmt.Sprintf("%s-%s-%d.json", r.Drill, r.Profile, seen[r.Key()])
		if err := reports.WriteResult(filepath.Join(dst, name), r); err != nil {
			return "", 0, fmt.Errorf("baseline save: %w", err)
		}
	}
	return dst, len(rs), nil
}

// BaselineInfo describes one stored baseline.
type BaselineInfo struct {
	Release string
	Dir     string
	Results int
	Keys    []string // drill/profile
	Newest  time.Time
	Err     error // the folder could not be read
}

// ListBaselines lists the baselines under dir, newest release last (by
// version order of the release labels).
func ListBaselines(dir string) ([]BaselineInfo, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("baseline list: %w", err)
	}
	var out []BaselineInfo
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		bi := BaselineInfo{Release: e.Name(), Dir: filepath.Join(dir, e.Name())}
		rs, err := ReadResults(bi.Dir)
		if err != nil {
			bi.Err = err
		}
		keys := map[string]bool{}
		for _, r := range rs {
			keys[r.Key()] = true
			if r.Start.After(bi.Newest) {
				bi.Newest = r.Start
			}
		}
		bi.Results = len(rs)
		for k := range keys {
			bi.Keys = append(bi.Keys, k)
		}
		sort.Strings(bi.Keys)
		out = append(out, bi)
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[i].Release, out[j].Release) })
	return out, nil
}

// ResolveBaseline turns --baseline into a folder. "" or "latest" is the
// highest release under baselines; a path to an existing folder is used as
// is; anything else is a release label under baselines. When there is no
// baseline it returns "" and why.
func ResolveBaseline(baselines, want string) (dir, why string) {
	if want == "none" {
		return "", "--baseline none"
	}
	if want != "" && want != "latest" {
		if st, err := os.Stat(want); err == nil && st.IsDir() && strings.ContainsAny(want, `/\`) {
			return want, ""
		}
		d := filepath.Join(baselines, want)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, ""
		}
		if st, err := os.Stat(want); err == nil && st.IsDir() {
			return want, ""
		}
		return "", fmt.Sprintf("baseline %q not found (no folder %s)", want, d)
	}
	bs, _ := ListBaselines(baselines)
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].Err == nil && bs[i].Results > 0 {
			return bs[i].Dir, ""
		}
	}
	return "", fmt.Sprintf("no baseline saved under %s (firedrill baseline save --release vX.Y)", baselines)
}

// versionLess orders release labels as versions: v1.10 after v1.9.
func versionLess(a, b string) bool {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		switch {
		case ea == nil && eb == nil && na != nb:
			return na < nb
		case (ea == nil) != (eb == nil):
			return ea == nil
		case ea != nil && pa[i] != pb[i]:
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

var versionSplit = regexp.MustCompile(`\d+|[^\d.\-+_]+`)

func versionParts(s string) []string {
	return versionSplit.FindAllString(strings.TrimPrefix(s, "v"), -1)
}
