//go:build !js

package dataset

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The on-disk thumbnail cache. A thumbnail costs a full decode of its image (30 ms for a 900x900 PNG),
// so a grid of a few hundred images took seconds every time the server started. Encoded thumbnails are
// kept in a folder shared by every dataset and process of the user:
//
//	DIR/v1/ab/abcdef....jpt   (the SHA-256 of the key; ab its first two hex digits)
//
// The key is the dataset id (a hash of its absolute root), the image id, the thumbnail size, the
// thumbnail format version and the source file's size and modification time, so an edited or replaced
// file gets a new thumbnail and never the old one. Each file is a small header (magic, length, CRC-32C
// of the JPEG) and the JPEG: a truncated or corrupted entry fails the check, is removed and made again,
// never served. Files are written to a temporary name and renamed, so a reader (another process too)
// sees a whole file or none. The folder is capped (DefaultThumbCacheBytes): past the cap the least
// recently used entries (by modification time, refreshed on every hit) are removed down to 90% of it.
// The in-memory LRU of the Dataset stays in front; any error of the disk cache only costs the cache,
// never the thumbnail.

// DefaultThumbCacheBytes caps the on-disk thumbnail cache (about 50 000 thumbnails of 256 px).
const DefaultThumbCacheBytes = 512 << 20

// ThumbCacheEnv is the environment variable that sets the thumbnail cache folder when SetThumbCache was
// not called with one; "off" turns the disk cache off.
const ThumbCacheEnv = "RDRE_THUMB_CACHE"

// thumbFormat names how thumbnails are made (box filter, JPEG quality 85); change it whenever their
// pixels change, so that older cached files are not served.
const thumbFormat = "box-q85-1"

const (
	thumbMagic   = "RDTHUMB1"
	thumbHeader  = len(thumbMagic) + 8 // magic, uint32 length, uint32 CRC-32C
	thumbExt     = ".jpt"
	thumbSubdir  = "v1"
	staleTempAge = time.Hour
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// thumbDisk is one cache folder; every Dataset of the process that uses the folder shares it.
type thumbDisk struct {
	dir string // DIR/v1
	max int64

	mu      sync.Mutex
	scanned bool
	size    int64 // bytes in the folder as this process counts them (rescanned when evicting)
}

var thumbCfg struct {
	mu    sync.Mutex
	dir   string // "" default, "off" none
	max   int64
	cache *thumbDisk // resolved; nil until first use
	off   bool       // resolved to none
}

// SetThumbCache sets the folder of the on-disk thumbnail cache of this process and its size cap. An empty
// dir means the default: $RDRE_THUMB_CACHE, else os.UserCacheDir()/rdre-studio/thumbs; "off" turns the
// disk cache off (the in-memory cache stays). maxBytes <= 0 means DefaultThumbCacheBytes. It applies to
// thumbnails made after the call, in every open Dataset.
func SetThumbCache(dir string, maxBytes int64) {
	thumbCfg.mu.Lock()
	defer thumbCfg.mu.Unlock()
	thumbCfg.dir, thumbCfg.max = dir, maxBytes
	thumbCfg.cache, thumbCfg.off = nil, false
}

// ThumbCacheDir returns the folder the disk cache uses ("" when it is off or cannot be used).
func ThumbCacheDir() string {
	if c := diskThumbs(); c != nil {
		return filepath.Dir(c.dir)
	}
	return ""
}

// diskThumbs resolves the configured folder once; nil means no disk cache.
func diskThumbs() *thumbDisk {
	thumbCfg.mu.Lock()
	defer thumbCfg.mu.Unlock()
	if thumbCfg.cache != nil || thumbCfg.off {
		return thumbCfg.cache
	}
	dir := thumbCfg.dir
	if dir == "" {
		dir = os.Getenv(ThumbCacheEnv)
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			slog.Debug("dataset: no user cache folder, thumbnails are not kept on disk", "err", err)
			thumbCfg.off = true
			return nil
		}
		dir = filepath.Join(base, "rdre-studio", "thumbs")
	}
	if dir == "off" {
		thumbCfg.off = true
		return nil
	}
	sub := filepath.Join(dir, thumbSubdir)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		slog.Warn("dataset: thumbnail cache folder unusable, thumbnails are not kept on disk", "dir", dir, "err", err)
		thumbCfg.off = true
		return nil
	}
	limit := thumbCfg.max
	if limit <= 0 {
		limit = DefaultThumbCacheBytes
	}
	thumbCfg.cache = &thumbDisk{dir: sub, max: limit}
	return thumbCfg.cache
}

// thumbKey is the cache key of a thumbnail of the source file as it is now.
func thumbKey(dataset, id string, size int, st fs.FileInfo) string {
	return strings.Join([]string{thumbFormat, dataset, id, strconv.Itoa(size),
		strconv.FormatInt(st.Size(), 10), strconv.FormatInt(st.ModTime().UnixNano(), 10)}, "\x00")
}

func (c *thumbDisk) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(c.dir, h[:2], h+thumbExt)
}

// get returns the cached JPEG of key; a damaged entry is removed and reported as a miss.
func (c *thumbDisk) get(key string) ([]byte, bool) {
	p := c.path(key)
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	jpg, err := unwrapThumb(raw)
	if err != nil {
		slog.Warn("dataset: damaged thumbnail cache entry removed", "file", p, "err", err)
		c.remove(p, int64(len(raw)))
		return nil, false
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // recently used: evicted last
	return jpg, true
}

func wrapThumb(jpg []byte) []byte {
	out := make([]byte, thumbHeader, thumbHeader+len(jpg))
	copy(out, thumbMagic)
	binary.LittleEndian.PutUint32(out[len(thumbMagic):], uint32(len(jpg)))
	binary.LittleEndian.PutUint32(out[len(thumbMagic)+4:], crc32.Checksum(jpg, castagnoli))
	return append(out, jpg...)
}

func unwrapThumb(raw []byte) ([]byte, error) {
	if len(raw) < thumbHeader || string(raw[:len(thumbMagic)]) != thumbMagic {
		return nil, errors.New("no thumbnail header")
	}
	n := binary.LittleEndian.Uint32(raw[len(thumbMagic):])
	sum := binary.LittleEndian.Uint32(raw[len(thumbMagic)+4:])
	jpg := raw[thumbHeader:]
	if uint64(len(jpg)) != uint64(n) {
		return nil, fmt.Errorf("%d bytes of JPEG, the header says %d", len(jpg), n)
	}
	if crc32.Checksum(jpg, castagnoli) != sum {
		return nil, errors.New("checksum mismatch")
	}
	if !bytes.HasPrefix(jpg, []byte{0xff, 0xd8}) {
		return nil, errors.New("not a JPEG")
	}
	return jpg, nil
}

// put stores jpg under key and evicts past the cap. Errors only cost the cache entry.
func (c *thumbDisk) put(key string, jpg []byte) {
	p := c.path(key)
	raw := wrapThumb(jpg)
	if err := writeAtomic(p, raw); err != nil {
		slog.Debug("dataset: thumbnail not cached", "file", p, "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.scanned {
		c.size, c.scanned = c.scan(), true // includes the file just written
	} else {
		c.size += int64(len(raw))
	}
	if c.size > c.max {
		c.evict()
	}
}

func writeAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := p + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (c *thumbDisk) remove(p string, n int64) {
	if os.Remove(p) != nil {
		return
	}
	c.mu.Lock()
	if c.scanned {
		c.size = max(0, c.size-n)
	}
	c.mu.Unlock()
}

type cachedFile struct {
	path string
	size int64
	mod  time.Time
}

// files lists the cache entries; temporary files older than an hour (a crash between write and rename)
// are removed on the way.
func (c *thumbDisk) files() []cachedFile {
	var out []cachedFile
	_ = filepath.WalkDir(c.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		name := e.Name()
		if strings.Contains(name, ".tmp-") {
			if time.Since(info.ModTime()) > staleTempAge {
				os.Remove(p)
			}
			return nil
		}
		if strings.HasSuffix(name, thumbExt) {
			out = append(out, cachedFile{p, info.Size(), info.ModTime()})
		}
		return nil
	})
	return out
}

func (c *thumbDisk) scan() int64 {
	var n int64
	for _, f := range c.files() {
		n += f.size
	}
	return n
}

// evict removes the least recently used entries until the folder holds at most 90% of the cap. It
// rescans the folder, so entries written by other processes count too. Called with c.mu held.
func (c *thumbDisk) evict() {
	files := c.files()
	var total int64
	for _, f := range files {
		total += f.size
	}
	slices.SortFunc(files, func(a, b cachedFile) int { return a.mod.Compare(b.mod) })
	target := c.max / 10 * 9
	for _, f := range files {
		if total <= target {
			break
		}
		if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			total -= f.size
		}
	}
	c.size = total
}
