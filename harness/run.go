package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/firedrill-dev/firedrill/environments"
	"github.com/firedrill-dev/firedrill/envvar"
	"github.com/firedrill-dev/firedrill/reports"
)

// Version is firedrill's own version, set at build time with
// -ldflags "-X github.com/firedrill-dev/firedrill/harness.Version=...".
var Version = "dev"

// k6ThresholdsFailed is k6's exit code when a threshold failed (also when
// abortOnFail stopped the run). k6's thresholds are for k6 users; the
// verdict comes from the drill's checks, so this code is not an error.
const k6ThresholdsFailed = 99

// RunOptions configure one run of one drill in one profile.
type RunOptions struct {
	Drill      Drill
	Profile    string   // one of Drill.Profiles
	OutDir     string   // results go to OutDir/<drill>-<profile>-<time>/
	K6         string   // the k6 binary with firedrill's extensions
	Memcached  int      // memcached servers
	MySQLImage string   // database image; default environments.MariaDBImage
	DBArgs     []string // extra database server arguments
	// DBCPUs is the database's CPU quota in cores: 0 takes
	// environments.DefaultDBCPUs, a negative value runs it without one.
	DBCPUs  float64
	Release string            // release label of the system under test
	Seed    int64             // the drill's random seed
	Params  map[string]string // values over the declared defaults (short form, --set); see Drill.Resolve
	Timeout time.Duration     // the whole run, environment included
	// Generators is the number of k6 processes that drive the load, each
	// with its own execution segment (0 or 1: one k6, as before).
	Generators int
	// Service is the service under test, for a drill that drives one
	// (Drill.UsesApp); nil otherwise.
	Service  *Service
	Progress io.Writer // progress lines
	K6Output io.Writer // k6's own output (also kept in k6.log)
}

// Run runs one drill in one profile and returns its result and the folder
// holding result.json, report.html and k6's files. The result is written
// even when the run fails; the error says why it failed. Everything the run
// started is removed before Run returns.
func Run(ctx context.Context, o RunOptions) (*reports.Result, string, error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.K6Output == nil {
		o.K6Output = io.Discard
	}
	if _, ok := o.Drill.Expect[o.Profile]; !ok {
		return nil, "", fmt.Errorf("run %s: unknown profile %q: the drill declares %s", o.Drill.Name, o.Profile, strings.Join(o.Drill.Profiles, ", "))
	}
	if _, err := os.Stat(o.K6); err != nil {
		return nil, "", fmt.Errorf("run %s: k6 binary %s: %w (build it with `make k6`)", o.Drill.Name, o.K6, err)
	}
	// The parameters and the drill's checks, read before anything starts:
	// a bad value or declaration costs nothing.
	scriptVars, err := ScriptVars(o.Drill, o.Profile, o.Seed, o.Generators, o.Params)
	if err != nil {
		return nil, "", fmt.Errorf("run %s: %w", o.Drill.Name, err)
	}
	scriptVars = append(scriptVars, envvar.DBCPUs+"="+strconv.FormatFloat(o.dbCPUs(), 'f', -1, 64))
	switch {
	case o.Drill.UsesApp() && o.Service == nil:
		return nil, "", fmt.Errorf("run %s: the drill drives a service under test: give one with --app IMAGE (or %s, --config FILE)", o.Drill.Name, ServiceFile)
	case !o.Drill.UsesApp() && o.Service != nil:
		return nil, "", fmt.Errorf("run %s: the drill drives firedrill's own traffic engine and takes no service under test (--app): drop it, or run an app-* drill", o.Drill.Name)
	}
	spec, err := InspectSpec(ctx, o.K6, o.Drill, scriptVars)
	if err != nil {
		return nil, "", err
	}
	spec.HTTP = o.Drill.UsesApp()
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("the run exceeded --timeout %s", o.Timeout))
		defer cancel()
	}
	start := time.Now().UTC()
	dir := filepath.Join(o.OutDir, fmt.Sprintf("%s-%s-%s", o.Drill.Name, o.Profile, start.Format("20060102-150405")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("run %s: %w", o.Drill.Name, err)
	}
	params := map[string]string{}
	for k, v := range o.Params {
		params[k] = v
	}
	res := &reports.Result{
		SchemaVersion: reports.SchemaVersion,
		RunID:         environments.NewRunID(),
		Drill:         o.Drill.Name,
		Incident:      o.Drill.Incident,
		Profile:       o.Profile,
		Release:       o.Release,
		Harness:       Version,
		Start:         start,
		Parameters:    params,
		Seed:          o.Seed,
		Verdict:       reports.Verdict{Expected: o.Drill.Expect[o.Profile], Reached: reports.Error},
		// Until the run ends, the file on disk says it did not finish, so
		// a harness killed mid-run still leaves an honest result.
		IncompleteReason: "the harness stopped before the run finished (killed or crashed)",
		Environment:      reports.Environment{Memcached: o.Memcached, Generators: max(1, o.Generators)},
	}
	res.Environment.Host, _ = os.Hostname()
	resultPath := filepath.Join(dir, "result.json")
	if err := reports.WriteResult(resultPath, res); err != nil {
		return nil, dir, err
	}
	runErr := run(ctx, o, res, dir, spec, scriptVars)
	res.End = time.Now().UTC()
	if runErr != nil {
		res.Complete = false
		res.IncompleteReason = runErr.Error()
		res.Verdict.Reached = reports.Error
		res.Verdict.Reason = runErr.Error()
	} else {
		res.Complete = true
		res.IncompleteReason = ""
	}
	res.Verdict.Pass = res.Verdict.Reached == res.Verdict.Expected
	if err := reports.WriteResult(resultPath, res); err != nil {
		return res, dir, errors.Join(runErr, err)
	}
	if err := writeReport(filepath.Join(dir, "report.html"), []*reports.Result{res}); err != nil {
		return res, dir, errors.Join(runErr, err)
	}
	return res, dir, runErr
}

// WriteReport renders results into one HTML file, atomically.
func writeReport(path string, rs []*reports.Result) error {
	var buf bytes.Buffer
	if err := reports.RenderHTML(&buf, rs); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return reports.WriteFileAtomic(path, buf.Bytes())
}

// run does the work between the two result writes: environment, k6,
// collection. The environment is always removed before it returns.
func run(ctx context.Context, o RunOptions, res *reports.Result, dir string, spec *Spec, scriptVars []string) (err error) {
	fmt.Fprintf(o.Progress, "run: %s (%s profile), results in %s\n", o.Drill.Name, o.Profile, dir)
	envOpts := []environments.Option{
		environments.WithRunID(res.RunID),
		environments.WithProgress(o.Progress),
	}
	if o.Memcached > 0 {
		envOpts = append(envOpts, environments.WithMemcached(o.Memcached))
	}
	if o.Drill.Tier > 0 {
		envOpts = append(envOpts, environments.WithTier(o.Drill.Tier))
	}
	if o.MySQLImage != "" {
		envOpts = append(envOpts, environments.WithMySQLImage(o.MySQLImage))
	}
	// The drill's own server options first, so that a caller's may
	// override them (the server takes the last of a repeated option).
	if args := append(slices.Clone(o.Drill.DBArgs), o.DBArgs...); len(args) > 0 {
		envOpts = append(envOpts, environments.WithDBArgs(args...))
		res.Environment.DBArgs = args
	}
	if o.DBCPUs != 0 {
		envOpts = append(envOpts, environments.WithDBCPUs(o.dbCPUs()))
	}
	env, upErr := environments.Up(ctx, envOpts...)
	defer func() {
		// A fresh context: teardown must run even when ctx was cancelled
		// by Ctrl-C or the timeout.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		fmt.Fprintf(o.Progress, "env: removing run %s\n", res.RunID)
		if derr := env.Down(dctx); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if upErr != nil {
		return describeCtx(ctx, upErr)
	}
	res.Environment.Images = env.Images
	res.Environment.Memcached = len(env.Memcached)
	res.Environment.DBFlavor = env.DB.Flavor
	res.Environment.DBCPUs = env.DBCPUs
	res.Environment.Route = env.Route
	res.Environment.ServerVersions = map[string]string{"database": env.DB.Version, "toxiproxy": environments.ToxiproxyVersion}
	if len(env.Memcached) > 0 {
		if v, err := environments.MemcachedVersion(ctx, env.Memcached[0].DirectAddr); err == nil {
			res.Environment.ServerVersions["memcached"] = v
		}
	}

	// The service under test, after its schema and data; its logs are
	// saved whatever happens, before the environment goes.
	var appVars []string
	var sampled []SampledApp
	if o.Service != nil {
		apps, tried, err := startService(ctx, o, env, res)
		defer saveAppLogs(ctx, o.Progress, dir, res.RunID, tried, apps)
		if err != nil {
			return describeCtx(ctx, err)
		}
		for _, a := range apps {
			switch a.Name {
			case ReleaseBase:
				appVars = append(appVars, envvar.AppBaseURL+"="+a.URL)
			case ReleaseHead:
				appVars = append(appVars, envvar.AppHeadURL+"="+a.URL, envvar.AppURL+"="+a.URL)
			default:
				appVars = append(appVars, envvar.AppURL+"="+a.URL)
			}
			sa := SampledApp{Name: a.Name, Service: a.Alias}
			if o.Service.Metrics != "" {
				sa.MetricsURL = a.URL + o.Service.Metrics
			}
			sampled = append(sampled, sa)
		}
	}

	// The servers' own counters, read from before k6 starts until it
	// ends; stopped (and its streams closed) before the environment goes.
	servers := filepath.Join(dir, ServersFile)
	smp, err := StartSampler(ctx, env, servers, WithSamplerProgress(o.Progress), WithApps(sampled...))
	if err != nil {
		return err
	}
	defer func() {
		// The backstop for early errors: the paths that collect stop it
		// first and report a failure to stop themselves.
		if serr := smp.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	samples := filepath.Join(dir, "k6-samples.json.gz")
	summary := filepath.Join(dir, "k6-summary.json")
	hdr := filepath.Join(dir, "histograms.ndjson")
	vars := append(env.Vars(), scriptVars...)
	vars = append(vars, appVars...)
	vars = append(vars,
		envvar.OutDir+"="+dir,
		// Nothing leaves the machine: k6 would otherwise report usage home.
		"K6_NO_USAGE_REPORT=true",
	)
	if o.Generators > 1 {
		err := runGenerators(ctx, o, res, dir, vars, o.Generators, spec, smp, env.DB.AdminDSN)
		resetToxics(ctx, o.Progress, env.ToxiproxyURL)
		return err
	}
	vars = append(vars, envvar.HDROut+"="+hdr)
	args := []string{"run", "--no-color",
		"--out", "json=" + samples, "--summary-export", summary, o.Drill.Path}
	fmt.Fprintf(o.Progress, "k6: %s %s\n", o.K6, strings.Join(args, " "))
	k6Start := time.Now()
	code, k6Err := runK6(ctx, o, args, vars, filepath.Join(dir, "k6.log"))

	resetToxics(ctx, o.Progress, env.ToxiproxyURL)
	if err := smp.Stop(); err != nil && k6Err == nil {
		k6Err = err
	}

	col := newCollector(k6Start)
	if err := col.readSamples(samples); err != nil && k6Err == nil {
		k6Err = err
	}
	if err := col.readLedger(hdr); err != nil && k6Err == nil {
		k6Err = err
	}
	if err := col.readServers(servers); err != nil && k6Err == nil {
		k6Err = err
	}
	if err := col.readTenants(ctx, env.DB.AdminDSN, dir); err != nil && k6Err == nil {
		k6Err = err
	}
	if ths, err := readThresholds(summary); err == nil {
		res.Thresholds = ths
	}
	if k6Err != nil {
		col.fill(res, nil)
		return describeCtx(ctx, k6Err)
	}
	// k6 logs an exception thrown in an iteration and carries on with exit
	// code 0; a drill whose traffic or fault call threw proved nothing.
	if exc := scriptException(filepath.Join(dir, "k6.log")); exc != "" {
		col.fill(res, nil)
		return fmt.Errorf("the script threw: %s", exc)
	}
	if code != 0 && code != k6ThresholdsFailed {
		col.fill(res, nil)
		return fmt.Errorf("k6 exited with code %d (see %s)", code, filepath.Join(dir, "k6.log"))
	}
	col.fill(res, spec)
	progressVerdict(o.Progress, o.Drill.Name, res)
	return nil
}

// startService loads the service's schema and data and starts its
// releases (each waits for its health check). It returns those started,
// also on error, and the names of the releases it began to start (those
// started and the one that failed), so that every container's logs are
// kept, also of a release whose container was created but never returned.
func startService(ctx context.Context, o RunOptions, env *environments.Env, res *reports.Result) ([]*environments.App, []string, error) {
	s := o.Service
	if s.SeedSQL != "" {
		if err := env.SeedSQL(ctx, s.SeedSQL); err != nil {
			return nil, nil, err
		}
	}
	specs := s.Specs(o.Profile)
	ids := map[string]string{}
	var apps []*environments.App
	var tried []string
	for _, sp := range specs {
		tried = append(tried, sp.Name)
		a, err := env.StartApp(ctx, sp)
		if a != nil {
			apps = append(apps, a)
			ids[a.Name] = a.ImageID
		}
		if err != nil {
			res.Environment.Apps = appsInfo(s, specs, ids)
			return apps, tried, err
		}
	}
	res.Environment.Apps = appsInfo(s, specs, ids)
	return apps, tried, nil
}

// saveAppLogs writes the output of each release in tried to app-NAME.log
// in the run folder: from its App when StartApp returned one, else from
// the run's container of that release found by its labels (StartApp
// fails without an App when the container was created but did not start,
// or exited before its port was published: a service that crashes at
// once). A release that never got a container has no file.
func saveAppLogs(ctx context.Context, progress io.Writer, dir, runID string, tried []string, apps []*environments.App) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, name := range tried {
		i := slices.IndexFunc(apps, func(a *environments.App) bool { return a.Name == name })
		var b []byte
		var err error
		if i >= 0 {
			b, err = apps[i].Logs(lctx)
		} else {
			b, err = containerLogs(lctx, runID, environments.AppService(name))
			if errors.Is(err, errNoContainer) {
				continue
			}
		}
		if err != nil {
			fmt.Fprintf(progress, "run: logs of app %s: %v\n", name, err)
			continue
		}
		if err := reports.WriteFileAtomic(filepath.Join(dir, "app-"+name+".log"), b); err != nil {
			fmt.Fprintf(progress, "run: logs of app %s: %v\n", name, err)
		}
	}
}

var errNoContainer = errors.New("no container")

// containerLogs is the output (stdout and stderr, interleaved) of run
// runID's container of service, running or not, found by its labels;
// errNoContainer when there is none. A variable, for the tests.
var containerLogs = func(ctx context.Context, runID, service string) ([]byte, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	f := client.Filters{}
	f.Add("label", environments.LabelRun+"="+runID)
	f.Add("label", environments.LabelService+"="+service)
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: list %s: %w", service, err)
	}
	id := ""
	for _, c := range res.Items {
		if c.Labels[environments.LabelRun] == runID && c.Labels[environments.LabelService] == service {
			id = c.ID
		}
	}
	if id == "" {
		return nil, errNoContainer
	}
	r, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return nil, fmt.Errorf("docker logs %s: %w", service, err)
	}
	defer r.Close()
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("docker logs %s: %w", service, err)
	}
	// Without a TTY (as testcontainers starts it) the stream is
	// multiplexed; with one it is the output as is.
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, bytes.NewReader(raw)); err != nil {
		return raw, nil
	}
	return out.Bytes(), nil
}

// progressVerdict prints the verdict a run reached and why.
func progressVerdict(w io.Writer, drill string, res *reports.Result) {
	fmt.Fprintf(w, "run: %s %s: %s (expected %s)", drill, res.Profile, res.Verdict.Reached, res.Verdict.Expected)
	if res.Verdict.Reason != "" {
		fmt.Fprintf(w, ": %s", res.Verdict.Reason)
	}
	fmt.Fprintln(w)
}

// ScriptVars are the variables a drill's script reads besides the
// environment's endpoints: profile, seed, generators, and every parameter
// the drill declares, resolved for profile with overrides (the short form
// and --set) over the defaults (see Drill.Resolve and ParamVars).
func ScriptVars(d Drill, profile string, seed int64, generators int, overrides map[string]string) ([]string, error) {
	vals, err := d.Resolve(profile, overrides)
	if err != nil {
		return nil, err
	}
	vars := []string{
		envvar.Profile + "=" + profile,
		envvar.Seed + "=" + strconv.FormatInt(seed, 10),
		envvar.Generators + "=" + strconv.Itoa(max(1, generators)),
	}
	return append(vars, ParamVars(vals)...), nil
}

// ParamVar is the environment variable a drill parameter reaches its
// script as: FIREDRILL_<NAME>.
func ParamVar(name string) string {
	return envvar.ParamPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// resetToxics is the backstop: whatever toxics the script left, none
// survive the run.
func resetToxics(ctx context.Context, progress io.Writer, url string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if rerr := environments.Reset(rctx, url); rerr != nil {
		fmt.Fprintf(progress, "run: %v\n", rerr)
	}
}

// describeCtx names the cause when the context ended the run.
func describeCtx(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		if errors.Is(cause, context.Canceled) {
			return fmt.Errorf("interrupted: %w", err)
		}
		return fmt.Errorf("%v: %w", cause, err)
	}
	return err
}

// runK6 runs k6 in its own process group, so a Ctrl-C reaches it once, from
// us: it gets SIGINT to stop gracefully (teardown, summary), and SIGKILL if
// it has not stopped 30 s later. It dies with the harness (startTied).
func runK6(ctx context.Context, o RunOptions, args, vars []string, logPath string) (int, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return 0, fmt.Errorf("k6 log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(o.K6, args...)
	cmd.Env = append(os.Environ(), vars...)
	cmd.Stdout = io.MultiWriter(logf, o.K6Output)
	cmd.Stderr = io.MultiWriter(logf, o.K6Output)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done, err := startTied(cmd)
	if err != nil {
		return 0, fmt.Errorf("start k6: %w", err)
	}
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		fmt.Fprintf(o.Progress, "run: stopping k6 (%v)\n", context.Cause(ctx))
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case waitErr = <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			waitErr = <-done
		}
		return exitCode(waitErr), fmt.Errorf("k6 stopped: %w", context.Cause(ctx))
	}
	if waitErr != nil {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			return ee.ExitCode(), nil
		}
		return 0, fmt.Errorf("k6: %w", waitErr)
	}
	return 0, nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// scriptException returns the first exception k6 logged from the script, or
// "".
func scriptException(logPath string) string {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `hint="script exception"`) {
			continue
		}
		msg := line
		if i := strings.Index(line, `msg="`); i >= 0 {
			msg = line[i+5:]
			if j := strings.Index(msg, `\n`); j >= 0 {
				msg = msg[:j]
			} else if j := strings.Index(msg, `" `); j >= 0 {
				msg = msg[:j]
			}
		}
		return msg
	}
	return ""
}

// dbCPUs is the database's CPU quota the run asks for, in cores: 0 (none)
// for a negative DBCPUs, environments.DefaultDBCPUs for 0.
func (o RunOptions) dbCPUs() float64 {
	switch {
	case o.DBCPUs > 0:
		return o.DBCPUs
	case o.DBCPUs < 0:
		return 0
	}
	return environments.DefaultDBCPUs
}
