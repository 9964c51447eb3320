package models

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lithammer/fuzzysearch/fuzzy"
)

// KeyTestPrefix names the key test of a table with a key in force: key_unique_not_null_<table>.
const KeyTestPrefix = "key_unique_not_null_"

// Selection is what a build runs, chosen with dbt's selection syntax (see Select).
type Selection struct {
	Models map[string]bool // models to build
	Tests  map[string]bool // data tests of sql/tests to run
	// KeyTests runs the key tests: all (nil), or those of the named tables.
	KeyTests func(table string) bool
}

// Select chooses from the models (in build order) and tests Load returns. Each selector of include
// is a model or test name, "+name" (it and every model it reads, transitively), "name+" (it and
// every model that reads it) or "+name+"; no include selects everything. A data test runs when it is
// named or reads a chosen model (dbt's eager rule); a key test when it is named, or everything is
// chosen. exclude takes the same selectors out. An unknown name is an error naming the nearest.
func Select(models, tests []*Model, include, exclude []string) (*Selection, error) {
	all := len(include) == 0
	in, inKeys, err := expand(models, tests, include)
	if err != nil {
		return nil, err
	}
	out, outKeys, err := expand(models, tests, exclude)
	if err != nil {
		return nil, err
	}
	sel := &Selection{Models: map[string]bool{}, Tests: map[string]bool{}}
	for _, m := range models {
		if (all || in[m.Name]) && !out[m.Name] {
			sel.Models[m.Name] = true
		}
	}
	for _, t := range tests {
		chosen := all || in[t.Name] || slices.ContainsFunc(t.Deps, func(d string) bool { return sel.Models[d] })
		if chosen && !out[t.Name] {
			sel.Tests[t.Name] = true
		}
	}
	sel.KeyTests = func(table string) bool {
		name := KeyTestPrefix + table
		return (all || inKeys[name]) && !outKeys[name]
	}
	return sel, nil
}

// expand resolves selectors to names (models and tests), and the key tests named.
func expand(models, tests []*Model, selectors []string) (names, keyTests map[string]bool, err error) {
	names, keyTests = map[string]bool{}, map[string]bool{}
	byName := map[string]*Model{}
	for _, m := range append(slices.Clone(models), tests...) {
		byName[m.Name] = m
	}
	for _, s := range selectors {
		name := strings.TrimSuffix(strings.TrimPrefix(s, "+"), "+")
		if strings.HasPrefix(name, KeyTestPrefix) && s == name {
			keyTests[name] = true
			continue
		}
		m := byName[name]
		if m == nil {
			return nil, nil, unknown(s, name, byName)
		}
		names[name] = true
		if strings.HasPrefix(s, "+") {
			ancestors(m, byName, names)
		}
		if strings.HasSuffix(s, "+") {
			descendants(name, models, names)
		}
	}
	return names, keyTests, nil
}

// ancestors adds every model m reads, transitively.
func ancestors(m *Model, byName map[string]*Model, into map[string]bool) {
	for _, d := range m.Deps {
		if !into[d] {
			into[d] = true
			ancestors(byName[d], byName, into)
		}
	}
}

// descendants adds every model that reads name, transitively (models are in build order, so one
// pass sees each reader after what it reads).
func descendants(name string, models []*Model, into map[string]bool) {
	reached := map[string]bool{name: true}
	for _, m := range models {
		if slices.ContainsFunc(m.Deps, func(d string) bool { return reached[d] }) {
			reached[m.Name], into[m.Name] = true, true
		}
	}
}

// unknown is a selector naming no model or test, with the nearest name.
func unknown(selector, name string, byName map[string]*Model) error {
	best, dist := "", 0
	for n := range byName {
		if d := fuzzy.LevenshteinDistance(name, n); best == "" || d < dist || d == dist && n < best {
			best, dist = n, d
		}
	}
	msg := fmt.Sprintf("--select/--exclude %q: no model or data test %q (extract ls lists them)", selector, name)
	if best != "" && dist <= max(3, len(name)/3) {
		msg += fmt.Sprintf("; did you mean %q?", best)
	}
	return &SelectError{msg}
}

// SelectError is a selector that names nothing: a usage error.
type SelectError struct{ Msg string }

func (e *SelectError) Error() string { return e.Msg }
