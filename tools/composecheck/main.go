// Command nexuscart-composecheck is `docker compose config` without the rest of Docker
// Compose: it loads, interpolates, validates (Compose Spec schema) and normalises a compose
// file with github.com/compose-spec/compose-go/v2 at the version Docker Compose v2.40.3
// links, calling it the way that release's `config` command does
// (cmd/compose/compose.go toProjectOptions + ToProject, cmd/compose/config.go
// runConfigInterpolate). Building all of Compose takes 9 to 19 minutes on a 2-core machine;
// this takes well under one (docs/adr/0008-validate-compose-with-compose-go.md).
//
// Usage (flags as in `docker compose [global flags] config [flags] [SERVICE...]`):
//
//	nexuscart-composecheck [--project-directory DIR] [-f FILE]... [--env-file FILE]...
//	    [-p NAME] [--profile NAME]... [--format yaml|json] [-q] [SERVICE...]
//
// Exit status 0 with the normalised model on stdout, or 1 with the loader's error on
// stderr (the same message `docker compose config` prints).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

// stringList is a repeatable flag, like cobra's StringArray in Compose.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	projectDir  string
	projectName string
	files       stringList
	envFiles    stringList
	profiles    stringList
	format      string
	quiet       bool
	services    []string
}

func parseArgs(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("nexuscart-composecheck", flag.ContinueOnError)
	fs.StringVar(&o.projectDir, "project-directory", "", "alternate working directory (default: the first compose file's directory)")
	fs.StringVar(&o.projectName, "project-name", "", "project name")
	fs.StringVar(&o.projectName, "p", "", "project name (shorthand)")
	fs.Var(&o.files, "file", "compose file (repeatable)")
	fs.Var(&o.files, "f", "compose file (shorthand)")
	fs.Var(&o.envFiles, "env-file", "environment file (repeatable; default: COMPOSE_ENV_FILES, else <project dir>/.env)")
	fs.Var(&o.profiles, "profile", "profile to enable (repeatable)")
	fs.StringVar(&o.format, "format", "yaml", "output format: yaml or json")
	fs.BoolVar(&o.quiet, "quiet", false, "only validate, print nothing")
	fs.BoolVar(&o.quiet, "q", false, "only validate (shorthand)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	// Compose's --env-file defaults to COMPOSE_ENV_FILES (comma-separated).
	if len(o.envFiles) == 0 {
		if v := os.Getenv("COMPOSE_ENV_FILES"); v != "" {
			o.envFiles = strings.Split(v, ",")
		}
	}
	if o.format != "yaml" && o.format != "json" {
		return o, fmt.Errorf("unsupported format %q", o.format)
	}
	o.services = fs.Args()
	return o, nil
}

// projectOptions mirrors Compose's configOptions.ToProjectOptions followed by
// ProjectOptions.toProjectOptions, in the same order: the order decides which source of a
// variable wins (the process environment, then the env files).
func projectOptions(o options) (*cli.ProjectOptions, error) {
	po := []cli.ProjectOptionsFn{
		// `config` defaults: interpolate, resolve paths, normalise, check consistency.
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithDefaultProfiles(o.profiles...),
		cli.WithDiscardEnvFile,
		cli.WithWorkingDirectory(o.projectDir),
		cli.WithOsEnv,
	}
	if _, present := os.LookupEnv("PWD"); !present {
		pwd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		po = append(po, cli.WithEnv([]string{"PWD=" + pwd}))
	}
	po = append(po,
		cli.WithEnvFiles(o.envFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		// again: the project directory may only be known now, from the compose file's path
		cli.WithEnvFiles(o.envFiles...),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(o.profiles...),
		cli.WithName(o.projectName),
	)
	return cli.NewProjectOptions(o.files, po...)
}

func render(ctx context.Context, o options) ([]byte, error) {
	opts, err := projectOptions(o)
	if err != nil {
		return nil, err
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, err
	}
	if project.Name == "" {
		return nil, errors.New("project name can't be empty. Use `--project-name` to set a valid name")
	}
	if project, err = project.WithServicesEnabled(o.services...); err != nil {
		return nil, err
	}
	if project, err = project.WithSelectedServices(o.services); err != nil {
		return nil, err
	}
	project = project.WithoutUnnecessaryResources()
	if project, err = project.WithServicesEnvironmentResolved(true); err != nil {
		return nil, err
	}
	if err = project.CheckContainerNameUnicity(); err != nil {
		return nil, err
	}
	var out []byte
	if o.format == "json" {
		out, err = project.MarshalJSON()
	} else {
		out, err = project.MarshalYAML()
	}
	if err != nil {
		return nil, err
	}
	// Compose escapes every `$` of the interpolated output so that it reloads unchanged.
	return bytes.ReplaceAll(out, []byte{'$'}, []byte{'$', '$'}), nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err == nil {
		var out []byte
		if out, err = render(context.Background(), o); err == nil {
			if !o.quiet {
				_, err = os.Stdout.Write(out)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
