package runner

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"sort"
	"sync"
)

// maskedText replaces secret values in the trace, as GitLab shows them.
const maskedText = "[MASKED]"

// masker replaces secret values in a byte stream. A write may end in the
// middle of a secret (output arrives in arbitrary pipe-sized chunks), so a
// trailing partial match is held back until more input or flush decides it.
type masker struct {
	secrets [][]byte // longest first, so overlapping secrets mask fully
	first   [256]bool
	pending []byte
	emit    func([]byte)
}

func newMasker(secrets []string, emit func([]byte)) *masker {
	m := &masker{emit: emit}
	seen := map[string]bool{}
	for _, s := range secrets {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		m.secrets = append(m.secrets, []byte(s))
		m.first[s[0]] = true
	}
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	return m
}

func (m *masker) write(p []byte) {
	if len(m.secrets) == 0 {
		m.emit(p)
		return
	}
	m.pending = append(m.pending, p...)
	m.process(false)
}

func (m *masker) flush() {
	m.process(true)
}

func (m *masker) process(final bool) {
	buf := m.pending
	var out []byte
	start, i := 0, 0
scan:
	for i < len(buf) {
		if !m.first[buf[i]] {
			i++
			continue
		}
		rest := buf[i:]
		for _, s := range m.secrets {
			if len(rest) < len(s) {
				if !final && bytes.HasPrefix(s, rest) {
					// Might become this secret with the next write.
					break scan
				}
				continue
			}
			if bytes.HasPrefix(rest, s) {
				out = append(out, buf[start:i]...)
				out = append(out, maskedText...)
				i += len(s)
				start = i
				continue scan
			}
		}
		i++
	}
	out = append(out, buf[start:i]...)
	m.pending = append(m.pending[:0], buf[i:]...)
	if len(out) > 0 {
		m.emit(out)
	}
}

// traceBuffer holds a job's (masked) log for streaming to the server. The
// log goes to an unlinked temporary file (in memory only if none can be
// made), so that a long log costs the agent disk, not memory: a 200 MB log
// kept in a slice cost ~3× that in RSS. It is append-only, so the checksum
// is kept as a running CRC32. It is bounded by limit.
type traceBuffer struct {
	mu        sync.Mutex
	file      *os.File
	data      []byte // the log when file is nil
	size      int64
	crc       uint32
	limit     int64
	truncated bool
	masker    *masker
}

func newTraceBuffer(limit int64, secrets []string) *traceBuffer {
	t := &traceBuffer{limit: limit}
	if f, err := os.CreateTemp("", "kiln-trace-*.log"); err == nil {
		os.Remove(f.Name()) // gone with the descriptor, even after a crash
		t.file = f
	}
	t.masker = newMasker(secrets, t.appendMasked)
	return t
}

// put stores p at the end of the log; called with t.mu held.
func (t *traceBuffer) put(p []byte) {
	if len(p) == 0 {
		return
	}
	if t.file != nil {
		if _, err := t.file.WriteAt(p, t.size); err != nil {
			// Disk full or the like: keep going in memory.
			t.data = make([]byte, t.size)
			n, _ := t.file.ReadAt(t.data, 0)
			t.data = t.data[:n]
			t.file.Close()
			t.file = nil
			t.size = int64(n)
			t.crc = crc32.ChecksumIEEE(t.data)
			t.data = append(t.data, p...)
		}
	} else {
		t.data = append(t.data, p...)
	}
	t.crc = crc32.Update(t.crc, crc32.IEEETable, p)
	t.size += int64(len(p))
}

// appendMasked is called with t.mu held.
func (t *traceBuffer) appendMasked(p []byte) {
	if t.truncated {
		return
	}
	if t.limit > 0 && t.size+int64(len(p)) > t.limit {
		t.put(p[:max(t.limit-t.size, 0)])
		t.truncated = true
		t.put(fmt.Appendf(nil, "\n\x1b[33;1mJob's log exceeded limit of %d bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n", t.limit))
		return
	}
	t.put(p)
}

// Write masks and appends p; it never fails so that a chatty job is not
// killed by SIGPIPE when its log is cut.
func (t *traceBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.masker.write(p)
	return len(p), nil
}

// Flush releases a held-back partial secret match.
func (t *traceBuffer) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.masker.flush()
}

// Final appends the closing status line even past the size limit, so the
// job's log always says how it ended.
func (t *traceBuffer) Final(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.masker.flush()
	t.truncated = false
	t.limit = 0
	t.masker.write([]byte(line))
	t.masker.flush()
}

// From returns a copy of the trace from offset off.
func (t *traceBuffer) From(off int64) []byte {
	return t.FromN(off, -1)
}

// FromN returns a copy of at most n bytes (n < 0: all) of the trace from
// offset off: one PATCH worth, so that a long backlog is not copied whole
// per chunk.
func (t *traceBuffer) FromN(off int64, n int) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if off >= t.size {
		return nil
	}
	end := t.size
	if n >= 0 {
		end = min(end, off+int64(n))
	}
	if t.file == nil {
		return bytes.Clone(t.data[off:end])
	}
	buf := make([]byte, end-off)
	got, _ := t.file.ReadAt(buf, off)
	return buf[:got]
}

// Len returns the trace size in bytes.
func (t *traceBuffer) Len() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.size
}

// Checksum returns the crc32 of the whole trace in GitLab's format.
func (t *traceBuffer) Checksum() (string, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("crc32:%08x", t.crc), t.size
}

// Bytes returns a copy of the whole trace.
func (t *traceBuffer) Bytes() []byte { return t.From(0) }

// Close releases the temporary file once the job has been reported.
func (t *traceBuffer) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file != nil {
		t.file.Close()
		t.file = nil
		t.data, t.size, t.crc = nil, 0, 0
	}
}
