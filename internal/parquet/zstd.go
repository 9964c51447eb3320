package parquet

import (
	"fmt"
	"runtime"
	"sync"

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

// RegisterZstd makes every Parquet file this process writes with zstd (the lake's, Iceberg's copies)
// use the page-sized encoder: arrow-go keeps one codec per compression for the whole process, so
// main calls it once, before any file is written. Calling it again does nothing. A process that never
// calls it writes the same format with arrow-go's encoder, in more memory.
func RegisterZstd() error {
	registerOnce.Do(func() { registerErr = registerZstd() })
	return registerErr
}

var (
	registerOnce sync.Once
	registerErr  error
)

func registerZstd() error {
	codec, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		return fmt.Errorf("parquet: arrow-go has no zstd codec: %w", err)
	}
	orig, ok := codec.(arrowZstd)
	if !ok {
		return fmt.Errorf("parquet: arrow-go's zstd codec is %T, which lacks the streaming interfaces", codec)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithAllLitEntropyCompression(true),
		zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(pageWindow), zstd.WithLowerEncoderMem(true),
		// EncodeAll takes one of these per call: one per CPU is all that can run at once.
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return fmt.Errorf("parquet: zstd page encoder: %w", err)
	}
	compress.RegisterCodec(compress.Codecs.Zstd, pageCodec{arrowZstd: orig, enc: enc})
	return nil
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
