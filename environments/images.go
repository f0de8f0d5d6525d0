package environments

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Images the harness runs. They are built locally (`firedrill images`); no
// registry is needed. Each tag is a hash of what builds the image (its
// Dockerfile folder, the base's package list), so an image built from an
// older tree is never mistaken for the current one: a changed entrypoint
// gets a new tag and is built.
var (
	// BaseImage is a Debian base bootstrapped from the host's own package
	// mirror, with basePackages already installed so the service images
	// need no network from inside a build.
	BaseImage = "firedrill/base:bookworm-" + hashOf(basePackages)
	// MariaDBImage is the default database image.
	MariaDBImage = "firedrill/mariadb:" + contentTag("mariadb")
	// MemcachedImage is the memcached server image.
	MemcachedImage = "firedrill/memcached:" + contentTag("memcached")
	// ToxiproxyImage holds the toxiproxy server built from the module
	// version pinned in go.mod.
	ToxiproxyImage = "firedrill/toxiproxy:" + ToxiproxyVersion + "-" + contentTag("toxiproxy")
)

// ToxiproxyVersion is the github.com/Shopify/toxiproxy/v2 version in
// go.mod; a test keeps the two in step.
const ToxiproxyVersion = "v2.5.0"

// basePackages are installed when the base is bootstrapped. iptables is
// for the unreachable fault (faults/container), which runs it from the
// memcached image in Toxiproxy's network namespace.
const basePackages = "mariadb-server,memcached,iptables"

// contentTag hashes the embedded build folder of svc and the base's
// package list.
func contentTag(svc string) string {
	h := sha256.New()
	io.WriteString(h, basePackages+"\x00")
	_ = fs.WalkDir(dockerfiles, "images/"+svc, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := dockerfiles.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:8]
}

// baseSuite is the Debian release the base is bootstrapped from when
// /etc/os-release does not name one.
const baseSuite = "bookworm"

//go:embed images
var dockerfiles embed.FS

// BuildOption configures BuildImages.
type BuildOption func(*buildConfig)

type buildConfig struct {
	base      string
	rebuild   bool
	progress  io.Writer
	sourceDir string
	aptRoot   string
}

// WithBase builds the service images FROM image instead of the bootstrapped
// base, for machines where a registry is reachable (e.g.
// "debian:bookworm-slim"). Default: bootstrap BaseImage from the host's apt
// mirror when it is missing.
func WithBase(image string) BuildOption { return func(c *buildConfig) { c.base = image } }

// WithRebuild rebuilds every image even when it exists. Default: images that
// exist are reused.
func WithRebuild(rebuild bool) BuildOption { return func(c *buildConfig) { c.rebuild = rebuild } }

// WithBuildProgress sends progress lines for the slow steps to w. Default:
// os.Stderr.
func WithBuildProgress(w io.Writer) BuildOption { return func(c *buildConfig) { c.progress = w } }

// WithSourceDir is the firedrill source tree (holding go.mod) that the
// toxiproxy binary is built in. Default: found by walking up from the working
// directory.
func WithSourceDir(dir string) BuildOption { return func(c *buildConfig) { c.sourceDir = dir } }

// BuildImages makes sure the database, memcached and toxiproxy images exist,
// building what is missing (or everything, WithRebuild).
func BuildImages(ctx context.Context, opts ...BuildOption) error {
	cfg := buildConfig{progress: os.Stderr, aptRoot: "/"}
	for _, o := range opts {
		o(&cfg)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("build images: the docker command is not on PATH (install Docker)")
	}
	need := func(image string) bool { return cfg.rebuild || !imageExists(ctx, image) }

	if need(MariaDBImage) || need(MemcachedImage) {
		base := cfg.base
		if base == "" {
			base = BaseImage
			if need(BaseImage) {
				if err := bootstrapBase(ctx, &cfg); err != nil {
					return err
				}
			}
		}
		for _, svc := range []struct{ name, image string }{{"mariadb", MariaDBImage}, {"memcached", MemcachedImage}} {
			if !need(svc.image) {
				continue
			}
			fmt.Fprintf(cfg.progress, "images: building %s from %s\n", svc.image, base)
			if err := dockerBuild(ctx, svc.name, svc.image, base, nil); err != nil {
				return err
			}
		}
	}
	if need(ToxiproxyImage) {
		if err := buildToxiproxy(ctx, &cfg); err != nil {
			return err
		}
	}
	current, err := BuildExampleApp(ctx, WithBuildProgress(cfg.progress), WithSourceDir(cfg.sourceDir), WithRebuild(cfg.rebuild))
	if err != nil {
		return err
	}
	removeStaleImages(ctx, cfg.progress, current...)
	if cfg.rebuild {
		// A rebuild leaves the previous images untagged; they are ours
		// (labelled) and 600 MB each.
		_ = exec.CommandContext(ctx, "docker", "image", "prune", "-f", "--filter", "label=firedrill.image").Run()
	}
	return nil
}

// removeStaleImages removes firedrill's images whose tag is not the
// current one: built from an older tree, 500 MB each, never used again.
func removeStaleImages(ctx context.Context, progress io.Writer, keep ...string) {
	out, err := exec.CommandContext(ctx, "docker", "images", "--filter", "label=firedrill.image", "--format", "{{.Repository}}:{{.Tag}}").Output()
	if err != nil {
		return
	}
	current := map[string]bool{BaseImage: true, MariaDBImage: true, MemcachedImage: true, ToxiproxyImage: true}
	for _, k := range keep {
		current[k] = true
	}
	for _, img := range strings.Fields(string(out)) {
		if current[img] || strings.HasSuffix(img, ":<none>") {
			continue
		}
		if exec.CommandContext(ctx, "docker", "image", "rm", img).Run() == nil {
			fmt.Fprintf(progress, "images: removed %s (built from an older tree)\n", img)
		}
	}
}

// MissingImages lists the images the environment needs that do not exist.
func MissingImages(ctx context.Context, dbImage string) []string {
	var missing []string
	for _, img := range []string{dbImage, MemcachedImage, ToxiproxyImage} {
		if !imageExists(ctx, img) {
			missing = append(missing, img)
		}
	}
	return missing
}

func imageExists(ctx context.Context, image string) bool {
	return exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", image).Run() == nil
}

// dockerBuild builds environments/images/<svc> with its embedded Dockerfile.
// extra files (name -> host path) are copied into the build context.
func dockerBuild(ctx context.Context, svc, image, base string, extra map[string]string, buildArgs ...string) error {
	dir, err := os.MkdirTemp("", "firedrill-build-"+svc+"-")
	if err != nil {
		return fmt.Errorf("build %s: %w", image, err)
	}
	defer os.RemoveAll(dir)
	sub, err := fs.Sub(dockerfiles, "images/"+svc)
	if err != nil {
		return fmt.Errorf("build %s: %w", image, err)
	}
	if err := os.CopyFS(dir, sub); err != nil {
		return fmt.Errorf("build %s: copy context: %w", image, err)
	}
	for name, src := range extra {
		if err := os.Rename(src, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("build %s: copy %s: %w", image, name, err)
		}
	}
	args := []string{"build", "-q", "-t", image, "--label", "firedrill.image=" + svc}
	if base != "" {
		args = append(args, "--build-arg", "BASE="+base)
	}
	for _, a := range buildArgs {
		args = append(args, "--build-arg", a)
	}
	args = append(args, dir)
	cmd := exec.CommandContext(ctx, "docker", args...)
	// The classic builder builds FROM a locally imported image without
	// asking a registry; BuildKit would try to resolve it remotely.
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: docker build: %w\n%s", image, err, tail(out.String(), 20))
	}
	return nil
}

func buildToxiproxy(ctx context.Context, cfg *buildConfig) error {
	src := cfg.sourceDir
	if src == "" {
		var err error
		if src, err = findSourceDir(); err != nil {
			return fmt.Errorf("build %s: %w", ToxiproxyImage, err)
		}
	}
	tmp, err := os.MkdirTemp("", "firedrill-toxiproxy-")
	if err != nil {
		return fmt.Errorf("build %s: %w", ToxiproxyImage, err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "toxiproxy-server")
	fmt.Fprintf(cfg.progress, "images: building toxiproxy %s (static Go binary)\n", ToxiproxyVersion)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/Shopify/toxiproxy/v2/cmd/server")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: go build toxiproxy: %w\n%s", ToxiproxyImage, err, tail(string(out), 20))
	}
	fmt.Fprintf(cfg.progress, "images: building %s\n", ToxiproxyImage)
	return dockerBuild(ctx, "toxiproxy", ToxiproxyImage, "", map[string]string{"toxiproxy-server": bin})
}

// ExampleAppRepo is the example service's image (examples/app). Its tags
// are the releases, ExampleAppReleases, each also tagged with a hash of
// what it is built from (RELEASE-<hash>), as the other images are.
const ExampleAppRepo = "firedrill/example-app"

// ExampleAppReleases are the example's releases: v1 runs with its
// protections on, v2 is the regression (a 2 s cache timeout, no breaker,
// no request budget, and the Rails 7.0 cache format).
var ExampleAppReleases = []string{"v1", "v2"}

// ExampleAppImage is the example's image of release, e.g.
// firedrill/example-app:v1.
func ExampleAppImage(release string) string { return ExampleAppRepo + ":" + release }

// BuildExampleApp builds the example service's static binary on the host
// and, for each release, the image ExampleAppImage(release) FROM scratch.
// The binary is built every time (Go's cache makes that cheap): its hash,
// with the Dockerfile's, is the content tag RELEASE-<hash>, so an image
// built from older sources is rebuilt and never run by mistake. It
// returns every tag it made current.
func BuildExampleApp(ctx context.Context, opts ...BuildOption) ([]string, error) {
	cfg := buildConfig{progress: os.Stderr}
	for _, o := range opts {
		o(&cfg)
	}
	src := cfg.sourceDir
	if src == "" {
		var err error
		if src, err = findSourceDir(); err != nil {
			return nil, fmt.Errorf("build %s: %w", ExampleAppRepo, err)
		}
	}
	tmp, err := os.MkdirTemp("", "firedrill-example-app-")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", ExampleAppRepo, err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "app")
	// -trimpath and no VCS stamp: the same sources give the same bytes,
	// so the hash changes only when the service does.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", bin, "./examples/app")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: go build examples/app: %w\n%s", ExampleAppRepo, err, tail(string(out), 20))
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", ExampleAppRepo, err)
	}
	sum := sha256.Sum256(append(b, contentTag("example-app")...))
	hash := hex.EncodeToString(sum[:])[:12]
	var tags []string
	for _, rel := range ExampleAppReleases {
		tagged := ExampleAppImage(rel + "-" + hash)
		tags = append(tags, tagged, ExampleAppImage(rel))
		if cfg.rebuild || !imageExists(ctx, tagged) {
			fmt.Fprintf(cfg.progress, "images: building %s (examples/app, release %s)\n", tagged, rel)
			ctxDir := filepath.Join(tmp, "ctx-"+rel)
			if err := os.MkdirAll(ctxDir, 0o755); err != nil {
				return nil, fmt.Errorf("build %s: %w", tagged, err)
			}
			if err := os.WriteFile(filepath.Join(ctxDir, "app"), b, 0o755); err != nil {
				return nil, fmt.Errorf("build %s: %w", tagged, err)
			}
			if err := dockerBuild(ctx, "example-app", tagged, "", map[string]string{"app": filepath.Join(ctxDir, "app")}, "RELEASE="+rel); err != nil {
				return nil, err
			}
		}
		// The release's plain tag follows its newest build.
		if out, err := exec.CommandContext(ctx, "docker", "tag", tagged, ExampleAppImage(rel)).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("tag %s: %w: %s", ExampleAppImage(rel), err, strings.TrimSpace(string(out)))
		}
	}
	return tags, nil
}

// findSourceDir walks up from the working directory to the firedrill module.
func findSourceDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/firedrill-dev/firedrill\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the firedrill source tree (its go.mod) is not in this directory or above: run from the repository")
		}
		dir = parent
	}
}

func bootstrapBase(ctx context.Context, cfg *buildConfig) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("bootstrap %s: debootstrap is not installed (apt-get install debootstrap), or pass a pullable base with --base debian:bookworm-slim", BaseImage)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("bootstrap %s: debootstrap needs root (run `sudo make images`), or pass a pullable base with --base debian:bookworm-slim", BaseImage)
	}
	suite := osCodename(cfg.aptRoot)
	mirror, err := AptMirror(cfg.aptRoot, suite)
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", BaseImage, err)
	}
	dir, err := os.MkdirTemp("", "firedrill-base-")
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", BaseImage, err)
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "rootfs")
	fmt.Fprintf(cfg.progress, "images: bootstrapping %s from %s %s (takes about 2 minutes)\n", BaseImage, mirror, suite)
	start := time.Now()
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+basePackages,
		suite, root, mirror)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := runWithTicker(cmd, cfg.progress, "bootstrapping base", start); err != nil {
		return fmt.Errorf("bootstrap %s: debootstrap: %w\n%s", BaseImage, err, tail(log.String(), 20))
	}
	// Package lists and caches are dead weight in every service image.
	for _, p := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		_ = removeContents(filepath.Join(root, p))
	}
	fmt.Fprintf(cfg.progress, "images: importing %s\n", BaseImage)
	tarCmd := exec.CommandContext(ctx, "tar", "-C", root, "-c", ".")
	imp := exec.CommandContext(ctx, "docker", "import",
		"-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"-c", "LABEL firedrill.image=base", "-", BaseImage)
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", BaseImage, err)
	}
	imp.Stdin = pipe
	var impOut bytes.Buffer
	imp.Stdout, imp.Stderr = &impOut, &impOut
	if err := tarCmd.Start(); err != nil {
		return fmt.Errorf("bootstrap %s: tar: %w", BaseImage, err)
	}
	impErr := imp.Run()
	tarErr := tarCmd.Wait()
	if impErr != nil || tarErr != nil {
		return fmt.Errorf("bootstrap %s: import: %w\n%s", BaseImage, errors.Join(impErr, tarErr), tail(impOut.String(), 10))
	}
	fmt.Fprintf(cfg.progress, "images: %s ready in %s\n", BaseImage, time.Since(start).Round(time.Second))
	return nil
}

// runWithTicker runs cmd and prints a progress line every 15 s, so a CI log
// shows the slow step is alive.
func runWithTicker(cmd *exec.Cmd, w io.Writer, what string, start time.Time) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			fmt.Fprintf(w, "images: still %s (%s)\n", what, time.Since(start).Round(time.Second))
		}
	}
}

func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// osCodename is VERSION_CODENAME from os-release under root, or bookworm.
func osCodename(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "etc/os-release"))
	if err != nil {
		return baseSuite
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok && strings.Trim(v, `"`) != "" {
			return strings.Trim(v, `"`)
		}
	}
	return baseSuite
}

// AptMirror finds the Debian mirror apt on this host uses for suite, from
// deb822 .sources files or one-line sources.list entries under root. The
// security archive is skipped: it cannot bootstrap a system.
func AptMirror(root, suite string) (string, error) {
	var files []string
	d := filepath.Join(root, "etc/apt/sources.list.d")
	if m, _ := filepath.Glob(filepath.Join(d, "*.sources")); m != nil {
		files = append(files, m...)
	}
	if m, _ := filepath.Glob(filepath.Join(d, "*.list")); m != nil {
		files = append(files, m...)
	}
	files = append(files, filepath.Join(root, "etc/apt/sources.list"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = mirrorFromDeb822(string(b), suite)
		} else {
			uri = mirrorFromList(string(b), suite)
		}
		if uri != "" {
			return uri, nil
		}
	}
	return "", fmt.Errorf("no apt source for Debian %q found under %s (deb822 URIs: lines or sources.list deb lines): configure apt, or pass --base", suite, filepath.Join(root, "etc/apt"))
}

func mirrorFromDeb822(text, suite string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(stanza))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, " ") {
				continue
			}
			fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
		if !hasWord(fields["types"], "deb") || !hasWord(fields["suites"], suite) {
			continue
		}
		if strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		for _, u := range strings.Fields(fields["uris"]) {
			if usableMirror(u) {
				return strings.TrimSuffix(u, "/")
			}
		}
	}
	return ""
}

func mirrorFromList(text, suite string) string {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // options such as [signed-by=...]
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && f[1] == suite && usableMirror(f[0]) {
			return strings.TrimSuffix(f[0], "/")
		}
	}
	return ""
}

func usableMirror(u string) bool {
	return (strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "file:/")) &&
		!strings.Contains(u, "security")
}

func hasWord(list, w string) bool {
	for _, x := range strings.Fields(list) {
		if x == w {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
