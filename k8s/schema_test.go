// The CRD schema check the tests hold the manifests to: a subset of
// OpenAPI v3 structural schemas, test-only so the product does not carry it.

package k8s

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Schema is the subset of OpenAPI v3 that CRD structural schemas use.
type Schema struct {
	Type                 string             `yaml:"type"`
	Format               string             `yaml:"format"`
	Properties           map[string]*Schema `yaml:"properties"`
	Required             []string           `yaml:"required"`
	Items                *Schema            `yaml:"items"`
	AdditionalProperties *Schema            `yaml:"additionalProperties"`
	Enum                 []any              `yaml:"enum"`
	IntOrString          bool               `yaml:"x-kubernetes-int-or-string"`
}

// CRDSchema reads the openAPIV3Schema of the named version of a
// CustomResourceDefinition in YAML.
func CRDSchema(crd []byte, version string) (*Schema, error) {
	var doc struct {
		Spec struct {
			Versions []struct {
				Name   string `yaml:"name"`
				Schema struct {
					OpenAPIV3Schema *Schema `yaml:"openAPIV3Schema"`
				} `yaml:"schema"`
			} `yaml:"versions"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(crd, &doc); err != nil {
		return nil, fmt.Errorf("crd: %w", err)
	}
	for _, v := range doc.Spec.Versions {
		if v.Name == version && v.Schema.OpenAPIV3Schema != nil {
			return v.Schema.OpenAPIV3Schema, nil
		}
	}
	return nil, fmt.Errorf("crd: no schema for version %s", version)
}

// Validate checks a decoded YAML or JSON document against s the way the API
// server's structural validation does for the keywords above: types,
// int32/int64 ranges, enums, required fields, and unknown fields, which a
// strict (kubectl --validate=strict) apply rejects. It returns every
// problem, each with its path.
func Validate(s *Schema, doc any) []error {
	var errs []error
	validate(s, doc, "", &errs)
	return errs
}

func validate(s *Schema, v any, path string, errs *[]error) {
	fail := func(format string, a ...any) {
		*errs = append(*errs, fmt.Errorf("%s: %s", orDefault(path, "."), fmt.Sprintf(format, a...)))
	}
	if s == nil {
		return
	}
	if s.IntOrString {
		switch v.(type) {
		case string, int, int64, uint64, float64:
		default:
			fail("want an integer or a string, got %T", v)
		}
		return
	}
	if len(s.Enum) > 0 {
		ok := false
		for _, e := range s.Enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				ok = true
			}
		}
		if !ok {
			fail("%v is not one of %v", v, s.Enum)
		}
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail("want an object, got %T", v)
			return
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				fail("required field %q is missing", r)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub := path + "." + k
			if p, ok := s.Properties[k]; ok {
				validate(p, m[k], sub, errs)
				continue
			}
			if s.AdditionalProperties != nil {
				validate(s.AdditionalProperties, m[k], sub, errs)
				continue
			}
			if len(s.Properties) > 0 {
				fail("unknown field %q (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(s.Properties)), ", "))
			}
			// An object without properties (metadata) takes anything.
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail("want an array, got %T", v)
			return
		}
		for i, x := range a {
			validate(s.Items, x, fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case "string":
		if _, ok := v.(string); !ok {
			fail("want a string, got %T (%v)", v, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("want a boolean, got %T (%v)", v, v)
		}
	case "integer":
		var n float64
		switch x := v.(type) {
		case int:
			n = float64(x)
		case int64:
			n = float64(x)
		case uint64:
			n = float64(x)
		case float64:
			if x != math.Trunc(x) {
				fail("want an integer, got %v", x)
				return
			}
			n = x
		default:
			fail("want an integer, got %T (%v)", v, v)
			return
		}
		if s.Format == "int32" && (n < math.MinInt32 || n > math.MaxInt32) {
			fail("%v is out of int32 range", n)
		}
	case "number":
		switch v.(type) {
		case int, int64, uint64, float64:
		default:
			fail("want a number, got %T", v)
		}
	}
}
