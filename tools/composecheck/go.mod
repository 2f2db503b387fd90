// nexuscart-composecheck: `docker compose config` without the rest of Compose.
// Every module here is at the version Docker Compose v2.40.3 builds with (its go.mod),
// so the loader, schema and YAML/JSON encoding are byte for byte what that release runs.
// Bump them together with that release, never one alone.
module nexuscart/tools/composecheck

go 1.24.0

require github.com/compose-spec/compose-go/v2 v2.9.1

require (
	github.com/distribution/reference v0.6.0 // indirect
	github.com/docker/go-connections v0.6.0 // indirect
	github.com/docker/go-units v0.5.0 // indirect
	github.com/go-viper/mapstructure/v2 v2.4.0 // indirect
	github.com/mattn/go-shellwords v1.0.12 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.1 // indirect
	github.com/sirupsen/logrus v1.9.3 // indirect
	github.com/xhit/go-str2duration/v2 v2.1.0 // indirect
	go.yaml.in/yaml/v3 v3.0.4 // indirect
	golang.org/x/sync v0.17.0 // indirect
	golang.org/x/sys v0.37.0 // indirect
	golang.org/x/text v0.25.0 // indirect
)
