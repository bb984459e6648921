package plugin

import (
	"encoding/json"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// printStructured writes v as -o json or -o yaml and reports true; for any
// other format it writes nothing and reports false, so the caller prints its
// table. cli-runtime's JSON and YAML printers take only runtime.Objects.
func printStructured(out io.Writer, format string, v any) (bool, error) {
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = out.Write(b)
		return true, err
	}
	return false, nil
}

// statusDocument is what status -o json and -o yaml print: the daemon's
// DaemonStatus as protojson writes it (its fields by their JSON names, those
// of scalars and lists even when empty), with the phase by its Label, as
// scripts read it ("connected", not the enum's name), without the control
// protocol's version, and with what status repaired of a session that died
// (repaired, when it did).
func statusDocument(st *teleproto.DaemonStatus, repaired []string) (map[string]any, error) {
	b, err := protojson.MarshalOptions{EmitDefaultValues: true}.Marshal(st)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	doc["phase"] = st.GetPhase().Label()
	delete(doc, "version")
	if len(repaired) > 0 {
		doc["repaired"] = repaired
	}
	return doc, nil
}
