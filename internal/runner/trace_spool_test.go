package runner

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"testing"
)

// TestTraceBufferSpooled: a long log lives in the temporary file, reads
// back at any offset, and its running checksum matches the bytes.
func TestTraceBufferSpooled(t *testing.T) {
	tb := newTraceBuffer(0, []string{"SECRETVALUE"})
	defer tb.Close()
	if tb.file == nil {
		t.Skip("no temporary file could be made")
	}
	var want bytes.Buffer
	line := []byte("a line of build output with SECRETVALUE in it\n")
	for i := 0; i < 60000; i++ {
		tb.Write(line)
		want.WriteString("a line of build output with [MASKED] in it\n")
	}
	tb.Flush()
	if tb.Len() != int64(want.Len()) || len(tb.data) != 0 {
		t.Fatalf("Len %d (memory %d), want %d on disk", tb.Len(), len(tb.data), want.Len())
	}
	if got := tb.FromN(12345, 1<<20); !bytes.Equal(got, want.Bytes()[12345:12345+1<<20]) {
		t.Error("FromN differs")
	}
	if !bytes.Equal(tb.Bytes(), want.Bytes()) {
		t.Error("Bytes differs")
	}
	if sum, n := tb.Checksum(); sum != fmt.Sprintf("crc32:%08x", crc32.ChecksumIEEE(want.Bytes())) || n != int64(want.Len()) {
		t.Errorf("Checksum %s %d", sum, n)
	}
}
