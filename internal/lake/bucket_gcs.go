//go:build gcs

package lake

// gs:// lakes, in builds with -tags gcs: the driver's packages add ~25 MB to every process's memory
// at start (measured: idle RSS), so the default build leaves them out.
import _ "gocloud.dev/blob/gcsblob"
