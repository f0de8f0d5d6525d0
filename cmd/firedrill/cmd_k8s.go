package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/firedrill-dev/firedrill/envvar"
	"github.com/firedrill-dev/firedrill/harness"
	"github.com/firedrill-dev/firedrill/k8s"
)

// k8sCmd writes what the k6-operator needs to run a drill at scale:
//
//	firedrill k8s manifests DRILL --parallelism N --out DIR --memcached host:port,... --mysql-dsn DSN --toxiproxy URL
func k8sCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "Usage: firedrill k8s manifests DRILL --parallelism N --out DIR [endpoint flags]\n"
	if len(args) == 0 || args[0] != "manifests" {
		fmt.Fprint(stderr, use)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errUsage
	}
	fs := flag.NewFlagSet("k8s manifests", flag.ContinueOnError)
	fs.SetOutput(stderr)
	parallelism := fs.Int("parallelism", 2, "k6 runner pods (each runs its own execution segment)")
	out := fs.String("out", "", "folder for the manifests (default k8s-DRILL)")
	image := fs.String("image", "firedrill-k6:latest", "the runner image: build it with the Dockerfile written next to the manifests and push it where the cluster pulls from")
	profile := fs.String("profile", "", "profile to run (default: the drill's first)")
	seed := fs.Int64("seed", 1, "random seed of the drill")
	namespace := fs.String("namespace", "", "namespace of the objects (default: kubectl's current)")
	memcached := fs.String("memcached", "", "memcached addresses through their proxies, `host:port,...` in server order (FIREDRILL_MEMCACHED)")
	proxies := fs.String("memcached-proxies", "", "Toxiproxy names of the memcached proxies, in the same order (default memcached-0,...)")
	direct := fs.String("memcached-direct", "", "memcached addresses without proxy, for checks (FIREDRILL_MEMCACHED_DIRECT)")
	dsn := fs.String("mysql-dsn", "", "Go MySQL DSN through the database proxy (FIREDRILL_MYSQL_DSN)")
	adminDSN := fs.String("mysql-admin-dsn", "", "direct database DSN for seeding and database faults (FIREDRILL_MYSQL_ADMIN_DSN)")
	dbProxy := fs.String("mysql-proxy", "mysql", "Toxiproxy name of the database proxy")
	flavor := fs.String("db-flavor", "mysql", "mariadb or mysql")
	toxiproxy := fs.String("toxiproxy", "", "Toxiproxy API URL reachable from the pods (FIREDRILL_TOXIPROXY)")
	storage := fs.String("storage", "1Gi", "size of the claim the runners write their k6 files to")
	storageClass := fs.String("storage-class", "", "storage class of that claim (it needs ReadWriteMany); default: the cluster's")
	scenarios := fs.String("scenarios", "scenarios", "folder of drill scripts")
	var sets stringList
	fs.Var(&sets, "set", "drill parameter `name=value`, one the drill declares (repeatable); the runners get every parameter resolved for --profile")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), use+`
Writes into --out: configmap.yaml (the drill script and scenarios/lib),
pvc.yaml (where runners write their k6 files), testrun.yaml (a k6-operator
TestRun, k6.io/v1alpha1, with --parallelism runners), kustomization.yaml and
the Dockerfile of the runner image (firedrill's k6, built from cmd/k6).
The endpoints are the user's: firedrill starts nothing in the cluster.

  docker build -f DIR/Dockerfile -t IMAGE . && docker push IMAGE
  kubectl apply -k DIR
  ... when the TestRun's stage is finished, copy /results out of the claim and:
  firedrill merge DRILL --profile P --out merged/ results/

Flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return usageErr(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("k8s manifests needs exactly one drill name, got %d", len(pos))
	}
	d, err := harness.FindDrill(*scenarios, pos[0])
	if err != nil {
		return badArg(err)
	}
	if *profile == "" {
		*profile = d.Profiles[0]
	} else if _, ok := d.Expect[*profile]; !ok {
		return badArg(fmt.Errorf("drill %s has no profile %q: choose %s", d.Name, *profile, strings.Join(d.Profiles, ", ")))
	}
	set, err := drillSets(d, sets)
	if err != nil {
		return err
	}
	// The runners get what `firedrill run` gives k6: every parameter,
	// resolved for the profile.
	vals, err := d.Resolve(*profile, set)
	if err != nil {
		return badArg(fmt.Errorf("--set: %w", err))
	}
	params := map[string]string{}
	for _, v := range vals {
		params[v.Name] = v.Value
	}
	if *parallelism < 1 {
		return badArg(fmt.Errorf("--parallelism must be at least 1, got %d", *parallelism))
	}
	if *memcached == "" || *dsn == "" || *toxiproxy == "" {
		return errors.New("k8s manifests: give the endpoints the runners reach: --memcached host:port,... --mysql-dsn DSN --toxiproxy URL")
	}
	n := len(strings.Split(*memcached, ","))
	if *proxies == "" {
		var ps []string
		for i := 0; i < n; i++ {
			ps = append(ps, fmt.Sprintf("memcached-%d", i))
		}
		*proxies = strings.Join(ps, ",")
	}
	if len(strings.Split(*proxies, ",")) != n {
		return fmt.Errorf("--memcached-proxies names %d proxies for %d memcached addresses", len(strings.Split(*proxies, ",")), n)
	}
	endpoints := map[string]string{
		envvar.Memcached:        *memcached,
		envvar.MemcachedProxies: *proxies,
		envvar.MySQLDSN:         *dsn,
		envvar.MySQLProxy:       *dbProxy,
		envvar.DBFlavor:         *flavor,
		envvar.Toxiproxy:        *toxiproxy,
		envvar.RunID:            "k8s-" + d.Name,
	}
	if *direct != "" {
		endpoints[envvar.MemcachedDirect] = *direct
	}
	if *adminDSN != "" {
		endpoints[envvar.MySQLAdminDSN] = *adminDSN
	}
	if *out == "" {
		*out = "k8s-" + d.Name
	}
	paths, err := k8s.Write(*out, k8s.Options{
		Drill: d.Name, Script: d.Path, LibDir: filepath.Join(*scenarios, "lib"),
		Profile: *profile, Seed: *seed, Parallelism: *parallelism, Namespace: *namespace,
		Image: *image, Endpoints: endpoints, Params: params, ParamsJSON: harness.ParamsJSON(vals),
		Storage: *storage, StorageClass: *storageClass,
	})
	if err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Fprintln(stdout, p)
	}
	return nil
}
