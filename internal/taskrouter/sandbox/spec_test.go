package sandbox_test

import (
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flexbridge/flexbridge/internal/taskrouter/sandbox"
	"github.com/flexbridge/flexbridge/internal/testutil/prism"
)

// specDoc is the part of an OpenAPI document these tests read.
type specDoc struct {
	Components struct {
		Schemas map[string]specSchema `yaml:"schemas"`
	} `yaml:"components"`
	Paths map[string]struct {
		Get struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema specSchema `yaml:"schema"`
				} `yaml:"content"`
			} `yaml:"responses"`
		} `yaml:"get"`
	} `yaml:"paths"`
}

type specSchema struct {
	Properties map[string]specSchema `yaml:"properties"`
	Format     string                `yaml:"format"`
}

func loadSpec(t *testing.T) *specDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(prism.ModuleRoot(t), "test", "specs", "twilio_taskrouter_v1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc specDoc
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestResponsesHaveEverySpecField checks what Prism cannot: the schemas require no
// field, so a response that left one out would pass its validation. Here every
// response must carry exactly the properties the description lists, and every
// date-time property must be ISO 8601 as the description's format says.
func TestResponsesHaveEverySpecField(t *testing.T) {
	doc := loadSpec(t)
	e := start(t, sandbox.Options{})
	created := e.createWorker(t, "spec", `{"a":1}`)
	ws := "/v1/Workspaces/" + testWS

	_, worker := e.do(t, "GET", ws+"/Workers/"+*created.Sid, nil, nil)
	_, workerList := e.do(t, "GET", ws+"/Workers?PageSize=1", nil, nil)
	_, workspace := e.do(t, "GET", ws, nil, nil)
	_, activityList := e.do(t, "GET", ws+"/Activities", nil, nil)
	activity := activityList["activities"].([]any)[0].(map[string]any)
	_, workspaceList := e.do(t, "GET", "/v1/Workspaces", nil, nil)

	for _, c := range []struct {
		name   string
		schema string
		obj    map[string]any
	}{
		{"fetched worker", "taskrouter.v1.workspace.worker", worker},
		{"listed worker", "taskrouter.v1.workspace.worker", workerList["workers"].([]any)[0].(map[string]any)},
		{"workspace", "taskrouter.v1.workspace", workspace},
		{"listed workspace", "taskrouter.v1.workspace", workspaceList["workspaces"].([]any)[0].(map[string]any)},
		{"activity", "taskrouter.v1.workspace.activity", activity},
	} {
		schema, ok := doc.Components.Schemas[c.schema]
		if !ok {
			t.Fatalf("schema %s not in the description", c.schema)
		}
		if got, want := strings.Join(keys(c.obj), ","), strings.Join(keys(schema.Properties), ","); got != want {
			t.Errorf("%s has fields\n  %s\nthe description lists\n  %s", c.name, got, want)
		}
		for name, prop := range schema.Properties {
			switch prop.Format {
			case "date-time":
				s, _ := c.obj[name].(string)
				if _, err := time.Parse(time.RFC3339, s); err != nil || !strings.HasSuffix(s, "Z") {
					t.Errorf("%s.%s = %q, want an ISO 8601 UTC date-time", c.name, name, s)
				}
			case "uri":
				if s, ok := c.obj[name].(string); ok {
					if u, err := url.Parse(s); err != nil || !u.IsAbs() {
						t.Errorf("%s.%s = %q, want an absolute URI", c.name, name, s)
					}
				}
			}
		}
	}

	for _, c := range []struct {
		path string
		list map[string]any
		key  string
	}{
		{"/v1/Workspaces/{WorkspaceSid}/Workers", workerList, "workers"},
		{"/v1/Workspaces/{WorkspaceSid}/Activities", activityList, "activities"},
		{"/v1/Workspaces", workspaceList, "workspaces"},
	} {
		listSchema := doc.Paths[c.path].Get.Responses["200"].Content["application/json"].Schema
		if got, want := strings.Join(keys(c.list), ","), strings.Join(keys(listSchema.Properties), ","); got != want {
			t.Errorf("%s list has fields %s, the description lists %s", c.key, got, want)
		}
		meta := c.list["meta"].(map[string]any)
		if got, want := strings.Join(keys(meta), ","), strings.Join(keys(listSchema.Properties["meta"].Properties), ","); got != want {
			t.Errorf("%s meta has fields %s, the description lists %s", c.key, got, want)
		}
		if meta["key"] != c.key {
			t.Errorf("%s meta.key = %v", c.key, meta["key"])
		}
	}
	// The worker in a list has attributes null, the fetched one has them.
	if workerList["workers"].([]any)[0].(map[string]any)["attributes"] != nil || worker["attributes"] != `{"a":1}` {
		t.Errorf("attributes: listed %v, fetched %v", workerList["workers"].([]any)[0].(map[string]any)["attributes"], worker["attributes"])
	}
}
