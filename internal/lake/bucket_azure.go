//go:build azblob

package lake

// azblob:// lakes, in builds with -tags azblob: the driver's packages add to every process's memory at
// start (idle RSS; bench/README.md, session 9), so the default build leaves them out.
import _ "gocloud.dev/blob/azureblob"
