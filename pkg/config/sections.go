package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// TopLevelKeys are the sections of the one config file every binary reads.
// A stand-alone service decodes only its own sections but still rejects a
// key that no binary knows, so a typo is caught wherever it is.
func TopLevelKeys() []string {
	return []string{"data_dir", "embedded", "log", "nats", "ingest", "enricher", "advisor", "notifier"}
}

// LoadSections reads the YAML file at path and strictly decodes the named
// sections into their targets. Sections not asked for are skipped; unknown
// top-level keys are errors. An empty path is no file.
func LoadSections(path string, sections map[string]any) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path) //nolint:gosec // the operator's own config file
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := DecodeSections(data, sections); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// DecodeSections is LoadSections on bytes.
func DecodeSections(data []byte, sections map[string]any) error {
	var root map[string]yaml.Node
	if err := Decode(data, &root); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, k := range TopLevelKeys() {
		known[k] = true
	}
	var unknown []string
	for k := range root {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown top-level keys %s (known: %s)", strings.Join(unknown, ", "), strings.Join(TopLevelKeys(), ", "))
	}
	for name, target := range sections {
		node, ok := root[name]
		if !ok {
			continue
		}
		out, err := yaml.Marshal(&node)
		if err != nil {
			return fmt.Errorf("section %s: %w", name, err)
		}
		if err := Decode(out, target); err != nil {
			return fmt.Errorf("section %s: %w", name, err)
		}
	}
	return nil
}
