// Package mapping turns an identity from the IdP into the TaskRouter worker
// flexbridge should maintain for it, and merges the keys the bridge owns into
// a worker's current attributes.
//
// It is pure: no I/O (except the LoadFile convenience), no logging, no clock.
//
//	cfg, err := mapping.LoadFile("configs/mapping.yaml") // *ValidationError lists every problem
//	spec, err := cfg.Evaluate(identity)                   // roles, friendly name, owned attributes
//	if spec.Access {
//		attrs, changed, err := mapping.Merge(worker.Attributes, spec)
//		...
//	}
//
// The mapping file format is documented key by key in configs/mapping.yaml.
// In short: version (1), friendly_name (template), owns (keys the bridge
// manages besides "roles" and the MarkerKey), roles (default and rules of
// when/grant), attributes (a template or typed value per owned key) and
// inactive ("delete"). Templates are text/template over Identity with
// missingkey=error, the functions listed by FuncNames, a bounded printf,
// and no {{define}}/{{template}}; each must run on a zero Identity.
//
// Characters are counted in UTF-16 code units (CharCount) for TaskRouter's
// limits: 64 for a FriendlyName, 4,096 for the attributes.
package mapping
