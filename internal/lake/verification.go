package lake

import (
	"slices"
	"strings"
	"time"
)

// VerifyDir holds a record of every `extract verify`, for the docs site and for auditors to see when the
// lake was last proven whole.
const VerifyDir = "_verify"

// Verification is the outcome of one `extract verify`.
type Verification struct {
	At       time.Time `json:"at"`
	Checked  int       `json:"checked"`
	Problems []Problem `json:"problems"`
	// Head is the newest commit when verify began: every manifest up to it was checked.
	Head int `json:"head"`
}

// RecordVerification keeps v under _verify/, named by its time so that names sort by it.
func RecordVerification(st Store, v *Verification) error {
	return writeJSON(st, VerifyDir+"/"+v.At.UTC().Format("20060102T150405.000000000Z")+".json", v)
}

// LastVerification is the newest recorded verification, or nil if verify never ran on this lake.
func LastVerification(st Store) (*Verification, error) {
	es, err := st.List(VerifyDir + "/")
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range es {
		if strings.HasSuffix(e.Key, ".json") {
			keys = append(keys, e.Key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var v Verification
	name := strings.TrimSuffix(strings.TrimPrefix(slices.Max(keys), VerifyDir+"/"), ".json")
	if _, err := ReadJSON(st, VerifyDir, name, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
