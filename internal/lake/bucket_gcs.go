//go:build gcs

package lake

// gs:// lakes, in builds with -tags gcs: the driver's packages add to every process's memory at start
// (idle RSS; bench/README.md, session 9), so the default build leaves them out.
import _ "gocloud.dev/blob/gcsblob"
