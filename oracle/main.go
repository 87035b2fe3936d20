// Command oracle answers the queries of `harness eval` with Cilium's own policy engine.
//
// It reads the same inputs as `harness eval` — policy files (CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy YAML), a query file — plus the identities of the stack exported by
// `harness eval --dump-identities`, so that both sides see exactly the same labels, namespaces, named ports
// and outside addresses. Everything Cilium decides is decided by Cilium's packages of the pinned release:
// parsing and sanitising the rules, namespace and cluster defaulting, selectors, entities, CIDR identities,
// named ports, deny precedence, L4/L7 merging and the resulting policy-map lookup, Cilium's translation of
// HTTP rules for Envoy, the Kafka rule matching and request parser of proxylib, and the DNS proxy's
// match-pattern code.
//
// Usage:
//
//	oracle --policies PATH... [--stack FILE] --queries FILE [--cilium-version X.Y] --identities FILE
//	oracle --identities FILE --batch   < cases.jsonl   (one case per line, one answer per line)
//
// Exit codes: 0 answered; 2 bad input (the message names the file and the field).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// usageError is bad input: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func badInput(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

type args struct {
	policies   []string
	stack      string
	queries    string
	version    string
	identities string
	batch      bool
	kafkaParse bool
}

func parseArgs(argv []string) (args, error) {
	a := args{version: pinnedMinor}
	for i := 0; i < len(argv); i++ {
		flag := argv[i]
		value := func() (string, error) {
			if i+1 >= len(argv) || strings.HasPrefix(argv[i+1], "--") {
				return "", badInput("%s needs a value", flag)
			}
			i++
			return argv[i], nil
		}
		var err error
		switch flag {
		case "--policies":
			for i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "--") {
				i++
				a.policies = append(a.policies, argv[i])
			}
			if len(a.policies) == 0 {
				return a, badInput("--policies needs at least one file or directory")
			}
		case "--stack":
			a.stack, err = value()
		case "--queries":
			a.queries, err = value()
		case "--cilium-version":
			a.version, err = value()
		case "--identities":
			a.identities, err = value()
		case "--batch":
			a.batch = true
		case "--kafka-parse":
			a.kafkaParse = true
		case "-h", "--help":
			fmt.Println("usage: oracle --policies PATH... [--stack FILE] --queries FILE [--cilium-version X.Y] --identities FILE\n       oracle --identities FILE --batch < cases.jsonl\n       oracle --kafka-parse < frames.hex")
			os.Exit(0)
		default:
			return a, badInput("unknown argument %q", flag)
		}
		if err != nil {
			return a, err
		}
	}
	if a.kafkaParse {
		return a, nil
	}
	if a.identities == "" {
		return a, badInput("--identities FILE is required (write it with `harness eval --dump-identities FILE`)")
	}
	if !a.batch && (len(a.policies) == 0 || a.queries == "") {
		return a, badInput("--policies and --queries are required (or --batch)")
	}
	if !versionMatches(a.version) {
		return a, badInput("--cilium-version %s: this oracle is built against Cilium %s; build the variant of that release", a.version, ciliumRelease)
	}
	return a, nil
}

func versionMatches(v string) bool {
	return v == pinnedMinor || strings.HasPrefix(v, pinnedMinor+".")
}

// output is the document printed for one set of policies and queries, in the shape of `harness eval`.
type output struct {
	Cilium   string         `json:"cilium"`
	Engine   string         `json:"engine"`
	Policies []policyStatus `json:"policies"`
	Results  []result       `json:"results"`
}

type result struct {
	Query
	Verdict *verdict `json:"verdict,omitempty"`
	// Set when Cilium cannot compute the policy of an endpoint of the flow (for example two L7 parsers
	// for one peer and port): the agent refuses to regenerate that endpoint, so there is no verdict.
	Error string `json:"error,omitempty"`
}

// batchCase is one line of --batch input.
type batchCase struct {
	ID       string       `json:"id"`
	Policies []policyText `json:"policies"`
	Queries  []Query      `json:"queries"`
}

type policyText struct {
	File string `json:"file"`
	Text string `json:"text"`
}

type batchAnswer struct {
	ID       string         `json:"id"`
	Policies []policyStatus `json:"policies"`
	Results  []result       `json:"results"`
	Error    string         `json:"error,omitempty"`
}

func run(a args, stdout io.Writer) error {
	if a.kafkaParse {
		return runKafkaParse(os.Stdin, stdout)
	}
	ids, err := loadIdentities(a.identities)
	if err != nil {
		return err
	}
	if a.batch {
		return runBatch(ids, os.Stdin, stdout)
	}
	var docs []policyDoc
	for _, p := range a.policies {
		d, err := loadPolicyPath(p)
		if err != nil {
			return err
		}
		docs = append(docs, d...)
	}
	queries, err := loadQueries(a.queries)
	if err != nil {
		return err
	}
	out, err := answer(ids, docs, queries, a.queries)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(output{Cilium: pinnedMinor, Engine: "cilium " + ciliumRelease, Policies: out.Policies, Results: out.Results})
}

func runBatch(ids *identities, in io.Reader, stdout io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var c batchCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return badInput("stdin:%d: %v", line, err)
		}
		var docs []policyDoc
		var perr error
		for _, p := range c.Policies {
			d, err := parsePolicyText(p.File, []byte(p.Text))
			if err != nil {
				perr = err
				break
			}
			docs = append(docs, d...)
		}
		ans := batchAnswer{ID: c.ID, Policies: []policyStatus{}, Results: []result{}}
		if perr != nil {
			ans.Error = perr.Error()
		} else {
			out, err := answer(ids, docs, c.Queries, fmt.Sprintf("stdin:%d", line))
			if err != nil {
				ans.Error = err.Error()
			} else {
				ans.Policies, ans.Results = out.Policies, out.Results
			}
		}
		if err := enc.Encode(ans); err != nil {
			return err
		}
		// Answer each case as soon as it is decided: the caller may stream.
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// parsed is the answer of --kafka-parse for one frame: what proxylib's parser read, or why it refused.
type parsed struct {
	OK      bool         `json:"ok"`
	Request *wireRequest `json:"request,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// runKafkaParse reads one Kafka request frame per line (hex, with its 4-byte size) and answers one JSON
// line per frame: whether proxylib's parser reads it (a frame it refuses makes the proxy close the
// connection) and what it read.
func runKafkaParse(in io.Reader, stdout io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	enc := json.NewEncoder(stdout)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var p parsed
		if _, shown, err := parseWire([]string{line}); err != nil {
			p.Error = err.Error()
		} else {
			p.OK, p.Request = true, &shown[0]
		}
		if err := enc.Encode(p); err != nil {
			return err
		}
	}
	return sc.Err()
}

func main() {
	a, err := parseArgs(os.Args[1:])
	if err == nil {
		err = run(a, os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "oracle: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
