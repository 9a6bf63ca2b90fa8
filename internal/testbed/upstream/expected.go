package upstream

import (
	_ "embed"
	"fmt"
	"strings"
)

//go:embed expected.txt
var expectedTxt string

// Outcome is what expected.txt expects of a test.
type Outcome string

// Outcomes.
const (
	// Skip: the test's body is replaced by t.Skip(reason) before it runs.
	Skip Outcome = "skip"
	// Fail: the test runs and is expected to fail.
	Fail Outcome = "fail"
	// NoCompile: the whole suite is expected not to compile (Test "*").
	NoCompile Outcome = "compile"
)

// An Expectation is one line of expected.txt: "suite test outcome: reason".
type Expectation struct {
	Suite, Test string
	Outcome     Outcome
	Reason      string
}

// Expected parses expected.txt.
func Expected() ([]Expectation, error) { return parseExpected(expectedTxt) }

func parseExpected(text string) ([]Expectation, error) {
	var out []Expectation
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, reason, ok := strings.Cut(line, ":")
		f := strings.Fields(head)
		if !ok || len(f) != 3 || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("expected.txt:%d: want \"suite test skip|fail|compile: reason\", got %q", i+1, line)
		}
		e := Expectation{Suite: f[0], Test: f[1], Outcome: Outcome(f[2]), Reason: strings.TrimSpace(reason)}
		switch {
		case e.Outcome == NoCompile && e.Test != "*":
			return nil, fmt.Errorf("expected.txt:%d: compile applies to the whole suite: test \"*\"", i+1)
		case e.Outcome == Skip && strings.Contains(e.Test, "/"):
			return nil, fmt.Errorf("expected.txt:%d: only a top-level test can be skipped", i+1)
		case e.Outcome != Skip && e.Outcome != Fail && e.Outcome != NoCompile:
			return nil, fmt.Errorf("expected.txt:%d: unknown outcome %q", i+1, e.Outcome)
		}
		out = append(out, e)
	}
	return out, nil
}

// skipsOf returns the tests of suite that expected.txt skips, with their
// reasons.
func skipsOf(exp []Expectation, suite string) map[string]string {
	m := map[string]string{}
	for _, e := range exp {
		if e.Suite == suite && e.Outcome == Skip {
			m[e.Test] = e.Reason
		}
	}
	return m
}
