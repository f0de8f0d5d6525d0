package database

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestIdentifiersAndTypesAreChecked(t *testing.T) {
	for _, s := range []string{"orders", "idx_customer", "t$1"} {
		if _, err := ident("table", s); err != nil {
			t.Errorf("%q rejected: %v", s, err)
		}
	}
	for _, s := range []string{"", "a b", "x`; DROP TABLE y", strings.Repeat("a", 65)} {
		if _, err := ident("table", s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	for _, s := range []string{"BIGINT NOT NULL", "INT", "VARCHAR(64)", "DECIMAL(10,2) NOT NULL"} {
		if err := checkType(s); err != nil {
			t.Errorf("%q rejected: %v", s, err)
		}
	}
	for _, s := range []string{"INT; DROP DATABASE x", "VARCHAR(a)", "INT`"} {
		if err := checkType(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if err := checkPrefix("firedrill_t_"); err != nil {
		t.Error(err)
	}
	for _, p := range []string{"", "app_", "firedrill-x"} {
		if err := checkPrefix(p); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

func TestValidationBeforeAnyStatement(t *testing.T) {
	// No server behind this injector: every call below must fail on its
	// arguments before reaching the pool.
	in := &Injector{flavor: MariaDB, timeout: time.Second, rec: nil,
		st: &state{hidden: map[indexKey]hide{}, storms: map[*Storm]bool{}, killers: map[*Killer]bool{}}}
	ctx := context.Background()
	if _, err := in.CapConnections(ctx, 0); err == nil {
		t.Error("cap 0 accepted")
	}
	if err := in.SetStatementLimit(ctx, -time.Second); err == nil {
		t.Error("negative limit accepted")
	}
	if err := in.PlanRegression(ctx, "s", "t", "PRIMARY", ""); err == nil {
		t.Error("primary key accepted")
	}
	if err := in.PlanRegression(ctx, "s", "t", "bad name", ""); err == nil {
		t.Error("bad index name accepted")
	}
	if _, err := in.StartQueryKiller(ctx, KillerConfig{}); err == nil {
		t.Error("killer without threshold accepted")
	}
	if _, err := in.StartDDLStorm(ctx, StormConfig{Prefix: "firedrill_x_", Method: "sideways"}); err == nil {
		t.Error("unknown storm method accepted")
	}
	if _, err := in.StartDDLStorm(ctx, StormConfig{Prefix: "firedrill_x_", Types: []string{"INT; DROP"}}); err == nil {
		t.Error("bad type accepted")
	}
	if _, err := New(ctx, nil, "oracle"); err == nil {
		t.Error("unknown flavor accepted")
	}
}

func TestLimitVariablePerFlavor(t *testing.T) {
	m := &Injector{flavor: MariaDB}
	if n, v := m.limitVar(1500 * time.Millisecond); n != "max_statement_time" || v != "1.500" {
		t.Errorf("mariadb: %s=%s", n, v)
	}
	y := &Injector{flavor: MySQL}
	if n, v := y.limitVar(1500 * time.Millisecond); n != "max_execution_time" || v != "1500" {
		t.Errorf("mysql: %s=%s", n, v)
	}
	if m.hiddenWord(true) != "IGNORED" || y.hiddenWord(true) != "INVISIBLE" || m.hiddenWord(false) != "NOT IGNORED" || y.hiddenWord(false) != "VISIBLE" {
		t.Error("index visibility words")
	}
}
