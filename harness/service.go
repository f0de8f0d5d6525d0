package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/reports"
)

// ServiceFile is the file a run reads its service under test from when
// no --config names one and it exists in the working directory.
const ServiceFile = "firedrill.yaml"

// Service is the service under test: one release, or two side by side
// (base and head) for a rolling deploy, with its settings. It comes from
// firedrill.yaml and the --app flags (the flags win).
type Service struct {
	// Releases are "app" alone, or "base" and "head", each an image.
	Releases []Release
	Port     int
	Health   string
	Metrics  string // path of its Prometheus metrics, "" when it has none
	Env      map[string]string
	// Profiles are environment overrides per drill profile: a service
	// that can run with its protections on or off declares both, and the
	// drill's profiles then judge each; without them the service has one
	// configuration, judged on the drill's steady state.
	Profiles map[string]map[string]string
	CPUs     float64
	MemoryMB int
	SeedSQL  string
	Startup  time.Duration
	// Source says where it was declared (a file, flags), for errors.
	Source string
}

// Release is one image of the service.
type Release struct {
	Name  string // "app", "base" or "head"
	Image string
	Env   map[string]string // this release's own overrides (firedrill.yaml releases:)
}

// Release names.
const (
	ReleaseApp  = "app"
	ReleaseBase = "base"
	ReleaseHead = "head"
)

// serviceFile is firedrill.yaml's shape.
type serviceFile struct {
	Image    string                 `yaml:"image"`
	Releases map[string]releaseFile `yaml:"releases"`
	Port     int                    `yaml:"port"`
	Health   string                 `yaml:"health"`
	Metrics  string                 `yaml:"metrics"`
	Env      map[string]string      `yaml:"env"`
	Profiles map[string]profileFile `yaml:"profiles"`
	CPUs     float64                `yaml:"cpus"`
	Memory   string                 `yaml:"memory"`
	SeedSQL  string                 `yaml:"seed_sql"`
	Startup  string                 `yaml:"startup"`
}

type releaseFile struct {
	Image string            `yaml:"image"`
	Env   map[string]string `yaml:"env"`
}

type profileFile struct {
	Env map[string]string `yaml:"env"`
}

// LoadServiceFile reads firedrill.yaml. seed_sql is relative to the
// file's folder.
func LoadServiceFile(path string) (*Service, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("service file: %w", err)
	}
	var f serviceFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("service file %s: %w", path, err)
	}
	s := &Service{Port: f.Port, Health: f.Health, Metrics: f.Metrics, Env: f.Env, CPUs: f.CPUs, Source: path,
		Profiles: map[string]map[string]string{}}
	if f.Image != "" && len(f.Releases) > 0 {
		return nil, fmt.Errorf("service file %s: give image (one release) or releases (base and head), not both", path)
	}
	if f.Image != "" {
		s.Releases = []Release{{Name: ReleaseApp, Image: f.Image}}
	}
	for _, name := range slices.Sorted(maps.Keys(f.Releases)) {
		if name != ReleaseBase && name != ReleaseHead {
			return nil, fmt.Errorf("service file %s: releases: %q: the releases are base and head", path, name)
		}
		r := f.Releases[name]
		s.Releases = append(s.Releases, Release{Name: name, Image: r.Image, Env: r.Env})
	}
	for p, pf := range f.Profiles {
		s.Profiles[p] = pf.Env
	}
	if f.Memory != "" {
		if s.MemoryMB, err = parseMemory(f.Memory); err != nil {
			return nil, fmt.Errorf("service file %s: memory: %w", path, err)
		}
	}
	if f.Startup != "" {
		if s.Startup, err = time.ParseDuration(f.Startup); err != nil {
			return nil, fmt.Errorf("service file %s: startup: %w", path, err)
		}
	}
	if f.SeedSQL != "" {
		s.SeedSQL = f.SeedSQL
		if !filepath.IsAbs(s.SeedSQL) {
			s.SeedSQL = filepath.Join(filepath.Dir(path), s.SeedSQL)
		}
	}
	return s, nil
}

// ServiceFlags are the run's --app flags.
type ServiceFlags struct {
	Apps     []string // IMAGE, or base=IMAGE and head=IMAGE
	Port     int
	Health   string
	Metrics  string
	Env      []string // NAME=VALUE
	CPUs     float64
	Memory   string
	SeedSQL  string
	Startup  time.Duration
	Explicit bool // any --app flag was given
}

// Apply lays the flags over s (nil: no file) and returns the result, nil
// when neither declares a service.
func (fl ServiceFlags) Apply(s *Service) (*Service, error) {
	if s == nil {
		if !fl.Explicit {
			return nil, nil
		}
		s = &Service{Source: "flags", Profiles: map[string]map[string]string{}}
	} else {
		c := *s
		c.Env = maps.Clone(s.Env)
		s = &c
	}
	if len(fl.Apps) > 0 {
		s.Releases = nil
		for _, a := range fl.Apps {
			name, image, ok := strings.Cut(a, "=")
			if !ok || strings.Contains(name, "/") || strings.Contains(name, ":") {
				name, image = ReleaseApp, a
			}
			if name != ReleaseApp && name != ReleaseBase && name != ReleaseHead {
				return nil, fmt.Errorf("--app %s: a release is base=IMAGE or head=IMAGE", a)
			}
			if image == "" {
				return nil, fmt.Errorf("--app %s: no image", a)
			}
			s.Releases = append(s.Releases, Release{Name: name, Image: image})
		}
	}
	if fl.Port != 0 {
		s.Port = fl.Port
	}
	if fl.Health != "" {
		s.Health = fl.Health
	}
	if fl.Metrics != "" {
		s.Metrics = fl.Metrics
	}
	for _, kv := range fl.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--app-env %q: want NAME=VALUE", kv)
		}
		if s.Env == nil {
			s.Env = map[string]string{}
		}
		s.Env[k] = v
	}
	if fl.CPUs != 0 {
		s.CPUs = fl.CPUs
	}
	if fl.Memory != "" {
		mb, err := parseMemory(fl.Memory)
		if err != nil {
			return nil, fmt.Errorf("--app-memory: %w", err)
		}
		s.MemoryMB = mb
	}
	if fl.SeedSQL != "" {
		s.SeedSQL = fl.SeedSQL
	}
	if fl.Startup != 0 {
		s.Startup = fl.Startup
	}
	return s, nil
}

var memorySize = regexp.MustCompile(`^(\d+)([kKmMgG]?)[bB]?$`)

// parseMemory reads 512m, 1g, 256M, 1073741824 into MiB.
func parseMemory(v string) (int, error) {
	m := memorySize.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, fmt.Errorf("%q: want a size such as 256m or 1g", v)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	switch strings.ToLower(m[2]) {
	case "", "b":
		n >>= 20
	case "k":
		n >>= 10
	case "g":
		n <<= 10
	}
	if n < 6 {
		return 0, fmt.Errorf("%q: Docker needs at least 6m", v)
	}
	return int(n), nil
}

// Validate checks the service for a run with memcached servers: its
// releases, port, paths, and every {{endpoint}} its settings name. It
// starts nothing.
func (s *Service) Validate(memcached int) error {
	if s.Port == 0 {
		s.Port = 8080
	}
	if s.Health == "" {
		s.Health = "/healthz"
	}
	switch {
	case len(s.Releases) == 0:
		return fmt.Errorf("service (%s): no image: give --app IMAGE, or image: in %s", s.Source, ServiceFile)
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("service (%s): port %d is not a TCP port", s.Source, s.Port)
	case !strings.HasPrefix(s.Health, "/"):
		return fmt.Errorf("service (%s): health check %q: want a path such as /healthz", s.Source, s.Health)
	case s.Metrics != "" && !strings.HasPrefix(s.Metrics, "/"):
		return fmt.Errorf("service (%s): metrics %q: want a path such as /metrics", s.Source, s.Metrics)
	case s.CPUs < 0:
		return fmt.Errorf("service (%s): cpus %g must be positive", s.Source, s.CPUs)
	}
	names := map[string]int{}
	for _, r := range s.Releases {
		names[r.Name]++
	}
	if len(s.Releases) > 1 && (names[ReleaseBase] != 1 || names[ReleaseHead] != 1 || len(s.Releases) != 2) {
		return fmt.Errorf("service (%s): two releases side by side are --app base=IMAGE --app head=IMAGE", s.Source)
	}
	if len(s.Releases) == 1 && s.Releases[0].Name != ReleaseApp {
		return fmt.Errorf("service (%s): only %s=%s: a rolling deploy needs both base=IMAGE and head=IMAGE; one release is --app IMAGE",
			s.Source, s.Releases[0].Name, s.Releases[0].Image)
	}
	if s.SeedSQL != "" {
		if _, err := os.Stat(s.SeedSQL); err != nil {
			return fmt.Errorf("service (%s): seed sql: %w", s.Source, err)
		}
	}
	ends := environments.Endpoints(memcached)
	check := func(where string, env map[string]string) error {
		for _, k := range slices.Sorted(maps.Keys(env)) {
			if _, err := environments.ResolveEndpoints(env[k], ends); err != nil {
				return fmt.Errorf("service (%s): %s%s: %w", s.Source, where, k, err)
			}
		}
		return nil
	}
	if err := check("env ", s.Env); err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(s.Profiles)) {
		if err := check("profile "+p+" env ", s.Profiles[p]); err != nil {
			return err
		}
	}
	for _, r := range s.Releases {
		if err := check("release "+r.Name+" env ", r.Env); err != nil {
			return err
		}
	}
	return nil
}

// Configurable says whether the service declares its environment per
// profile (protections on or off): then every profile of a drill is
// judged; otherwise only the profiles that must hold.
func (s *Service) Configurable() bool { return len(s.Profiles) > 0 }

// CheckProfiles says whether the service's profiles are the drill's.
func (s *Service) CheckProfiles(d Drill) error {
	for p := range s.Profiles {
		if _, ok := d.Expect[p]; !ok {
			return fmt.Errorf("service (%s): profile %q: drill %s has profiles %s", s.Source, p, d.Name, strings.Join(d.Profiles, ", "))
		}
	}
	return nil
}

// Specs are the releases to start in profile, each with its environment:
// the service's, the profile's overrides, then the release's own.
func (s *Service) Specs(profile string) []environments.AppSpec {
	var out []environments.AppSpec
	for _, r := range s.Releases {
		env := maps.Clone(s.Env)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, s.Profiles[profile])
		maps.Copy(env, r.Env)
		out = append(out, environments.AppSpec{Name: r.Name, Image: r.Image, Port: s.Port, Health: s.Health, Env: env,
			CPUs: s.CPUs, MemoryMB: s.MemoryMB, Startup: s.Startup})
	}
	return out
}

// Head is the release whose label a run carries: head, or the only one.
func (s *Service) Head() Release {
	for _, r := range s.Releases {
		if r.Name == ReleaseHead {
			return r
		}
	}
	return s.Releases[0]
}

// CheckImages makes sure every release's image is in the local engine and
// returns their ids by release name. Nothing has started yet.
func (s *Service) CheckImages(ctx context.Context) (map[string]string, error) {
	ids := map[string]string{}
	var errs []error
	for _, r := range s.Releases {
		id, err := environments.ImageID(ctx, r.Image)
		if err != nil {
			errs = append(errs, fmt.Errorf("--app %s: %w", r.Name, err))
			continue
		}
		ids[r.Name] = id
	}
	return ids, errors.Join(errs...)
}

// ReleaseLabel is the head image's tag and its short image id, e.g.
// v2-3f2a1b9c0d12: a valid baseline name that tells two builds of one tag
// apart.
func ReleaseLabel(image, id string) string {
	tag := "latest"
	ref := image
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		tag = ref[i+1:]
	}
	short := strings.TrimPrefix(id, "sha256:")
	if len(short) > 12 {
		short = short[:12]
	}
	label := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-", r) {
			return r
		}
		return '-'
	}, tag)
	if short != "" {
		label += "-" + short
	}
	return label
}

// appsInfo is what the result records of the releases that ran.
func appsInfo(s *Service, specs []environments.AppSpec, ids map[string]string) []reports.App {
	var out []reports.App
	for _, sp := range specs {
		keys := slices.Collect(maps.Keys(sp.Env))
		sort.Strings(keys)
		out = append(out, reports.App{Name: sp.Name, Image: sp.Image, ImageID: ids[sp.Name], Port: sp.Port, Health: sp.Health,
			Metrics: s.Metrics, Env: keys})
	}
	return out
}

// ForDrill is the service as drill d runs it, or an error saying why d
// cannot run against it: a rolling-deploy drill needs base and head; a
// drill of one release runs against head when there are two.
func (s *Service) ForDrill(d Drill) (*Service, error) {
	if s == nil || !d.UsesApp() {
		return nil, nil
	}
	switch {
	case d.App == 2 && len(s.Releases) != 2:
		return nil, fmt.Errorf("drill %s is a rolling deploy and the service has one release: give --app base=IMAGE --app head=IMAGE", d.Name)
	case d.App == 1 && len(s.Releases) == 2:
		c := *s
		head := s.Head()
		head.Name = ReleaseApp
		c.Releases = []Release{head}
		return &c, nil
	}
	return s, nil
}

// ProfilesFor are the profiles of d to run against the service: every one
// when the service declares its environment per profile, else those that
// must hold (one configuration: its steady state is judged, the
// signatures shown for information).
func (s *Service) ProfilesFor(d Drill) []string {
	if s == nil || !d.UsesApp() || s.Configurable() {
		return d.Profiles
	}
	var out []string
	for _, p := range d.Profiles {
		if d.Expect[p] == reports.Held {
			out = append(out, p)
		}
	}
	return out
}
