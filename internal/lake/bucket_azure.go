//go:build azblob

package lake

// azblob:// lakes, in builds with -tags azblob: the driver's packages add ~12 MB to every process's
// memory at start (measured: idle RSS), so the default build leaves them out.
import _ "gocloud.dev/blob/azureblob"
