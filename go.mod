module distill

go 1.26.0

require github.com/ardanlabs/jinja v1.8.0

require (
	github.com/dlclark/regexp2 v1.12.0
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/term v0.48.0
	golang.org/x/text v0.23.0
)
