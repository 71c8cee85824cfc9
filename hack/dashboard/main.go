// Command dashboard checks Grafana dashboard JSON files against Grafana's dashboard schema, as
// the Go types of grafana-foundation-sdk (generated from it) hold it: decoded strictly, so a
// missing required field, a mistyped one or one the schema does not know fails, panel options
// and Prometheus queries included; then the schema's own constraints. Prints one line a file.
package main

import (
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: ok\n", path)
	}
	if failed || len(os.Args) < 2 {
		os.Exit(1)
	}
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var board dashboard.Dashboard
	if err := failure(board.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("does not match the dashboard schema: %w", err)
	}
	if err := failure(board.Validate()); err != nil {
		return fmt.Errorf("breaks a constraint of the dashboard schema: %w", err)
	}
	return nil
}

// failure is err unless it is an empty list of errors: the SDK returns its (nil) list as an error.
func failure(err error) error {
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		return nil
	}
	return err
}
