package parquet

import (
	"fmt"
	"runtime"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// pageWindow is the zstd window for Parquet pages: data pages are cut at about 1 MiB, so a 2 MiB window
// still sees a whole page.
const pageWindow = 2 << 20

// pageCodec compresses Parquet pages with encoders sized for pages. arrow-go's own zstd codec pools
// encoders with zstd's default window, each keeping twice that of history, far more than a page
// needs: tens of MiB of live heap in a large run, and churn, since sync.Pool drops them at every GC
// (figures: bench/README.md, "Figures behind tuned constants"). Output is the same format; decoding
// stays arrow-go's.
type pageCodec struct {
	arrowZstd // decoding (block and streaming), bounds and non-default levels
	enc       *zstd.Encoder
}

// arrowZstd is what arrow-go's zstd codec implements; its readers look for the optional interfaces.
type arrowZstd interface {
	compress.ErrorCodec
	compress.StreamingCodec
}

func init() {
	codec, err := compress.GetCodec(compress.Codecs.Zstd)
	orig, ok := codec.(arrowZstd)
	if err != nil || !ok {
		panic(fmt.Sprintf("arrow-go's zstd codec is %T (%v)", codec, err)) // registered in arrow-go's init
	}
	enc, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithAllLitEntropyCompression(true),
		zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(pageWindow), zstd.WithLowerEncoderMem(true),
		// EncodeAll takes one of these per call: one per CPU is all that can run at once.
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		panic(err)
	}
	compress.RegisterCodec(compress.Codecs.Zstd, pageCodec{arrowZstd: orig, enc: enc})
}

// Encode compresses one page at the default level.
func (c pageCodec) Encode(dst, src []byte) []byte { return c.enc.EncodeAll(src, dst[:0]) }

// EncodeLevel compresses one page; levels other than the default go to arrow-go's codec.
func (c pageCodec) EncodeLevel(dst, src []byte, level int) []byte {
	if level != compress.DefaultCompressionLevel {
		return c.arrowZstd.EncodeLevel(dst, src, level)
	}
	return c.Encode(dst, src)
}
