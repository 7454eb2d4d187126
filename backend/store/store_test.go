//go:build !js

package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rdre-studio/studio/backend/resample"
	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sub", "ws.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, p
}

// patterned returns a w x h mask whose content is determined by seed.
func patterned(w, h int, seed int64, classes int) *mask.Label {
	m, err := mask.New(w, h)
	if err != nil {
		panic(err)
	}
	r := rand.New(rand.NewSource(seed))
	for i := range m.Pix {
		if r.Intn(5) == 0 {
			m.Pix[i] = uint8(1 + r.Intn(classes))
		}
	}
	return m
}

func TestStore_Open_CreatesSchemaAndReopens(t *testing.T) {
	s, p := openTemp(t)
	if v, err := s.Schema(); err != nil || v != SchemaVersion {
		t.Fatalf("schema %d %v", v, err)
	}
	info := protocol.DatasetInfo{ID: "bottle-12345678", Name: "bottle", Root: "/d/bottle", Layout: protocol.LayoutMVTec, Kinds: []string{"good", "crack"}, Images: 3}
	if err := s.PutDataset(info); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ds, err := s2.Datasets()
	if err != nil || len(ds) != 1 || !reflect.DeepEqual(ds[0], info) {
		t.Fatalf("datasets after reopen: %+v %v", ds, err)
	}
	if got, err := s2.Dataset(info.ID); err != nil || got.Root != info.Root {
		t.Fatalf("Dataset: %+v %v", got, err)
	}
	if _, err := s2.Dataset("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown dataset: %v", err)
	}
}

func TestStore_Open_RefusesNewerSchemaAndRunsMigrations(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ws.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	setSchema := func(v uint32) {
		db, err := bolt.Open(p, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(kSchema, u32(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	setSchema(SchemaVersion + 1)
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("newer schema: %v", err)
	}
	// An older file without a migration path is refused and left untouched.
	setSchema(SchemaVersion - 1)
	old := migrations
	defer func() { migrations = old }()
	migrations = map[int]func(*bolt.Tx) error{}
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), "no migration") {
		t.Fatalf("old schema without a migration: %v", err)
	}
	// With one, it runs inside the upgrade transaction and the file ends at the current version.
	migrations[SchemaVersion-1] = func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put([]byte("migrated"), []byte("yes"))
	}
	s, err = Open(p)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	defer s.Close()
	if v, err := s.Schema(); err != nil || v != SchemaVersion {
		t.Fatalf("schema after migration %d %v", v, err)
	}
	var marker []byte
	s.db.View(func(tx *bolt.Tx) error {
		marker = append(marker, tx.Bucket(bMeta).Get([]byte("migrated"))...)
		return nil
	})
	if string(marker) != "yes" {
		t.Fatal("the migration did not run")
	}
}

func TestStore_Open_SecondProcessGetsClearError(t *testing.T) {
	_, p := openTemp(t)
	// bbolt's flock is per open file description, so a second Open in this process behaves as another process would.
	start := time.Now()
	_, err := Open(p)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("second open hung")
	}
}

func TestStore_SaveMask_VersionsHistoryAndRevert(t *testing.T) {
	s, _ := openTemp(t)
	const ds, img = "d1", "test/crack/000.png"
	if _, _, err := s.Mask(ds, img, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("mask before any save: %v", err)
	}
	if vs, err := s.MaskVersions(ds, img); err != nil || len(vs) != 0 {
		t.Fatalf("history before any save: %v %v", vs, err)
	}
	var saved []*mask.Label
	for i := 0; i < 4; i++ {
		m := patterned(37, 23, int64(i), 3)
		v, err := s.SaveMask(ds, img, m)
		if err != nil {
			t.Fatal(err)
		}
		if v != i+1 {
			t.Fatalf("save %d got version %d", i, v)
		}
		saved = append(saved, m)
	}
	for i, want := range saved {
		got, v, err := s.Mask(ds, img, i+1)
		if err != nil || v != i+1 || !bytes.Equal(got.Pix, want.Pix) || got.W != 37 || got.H != 23 {
			t.Fatalf("version %d: v=%d err=%v equal=%v", i+1, v, err, err == nil && bytes.Equal(got.Pix, want.Pix))
		}
	}
	newest, v, err := s.Mask(ds, img, 0)
	if err != nil || v != 4 || !bytes.Equal(newest.Pix, saved[3].Pix) {
		t.Fatalf("newest: v=%d err=%v", v, err)
	}
	vs, err := s.MaskVersions(ds, img)
	if err != nil || len(vs) != 4 {
		t.Fatalf("history %v %v", vs, err)
	}
	for i, mv := range vs {
		if mv.Version != i+1 || mv.Pixels != saved[i].Count() {
			t.Fatalf("history entry %d: %+v, want %d pixels", i, mv, saved[i].Count())
		}
		if _, err := time.Parse(time.RFC3339Nano, mv.SavedAt); err != nil {
			t.Fatalf("savedAt %q: %v", mv.SavedAt, err)
		}
	}
	nv, err := s.RevertMask(ds, img, 2)
	if err != nil || nv != 5 {
		t.Fatalf("revert: %d %v", nv, err)
	}
	got, v, err := s.Mask(ds, img, 0)
	if err != nil || v != 5 || !bytes.Equal(got.Pix, saved[1].Pix) {
		t.Fatalf("after revert: v=%d err=%v", v, err)
	}
	if _, err := s.RevertMask(ds, img, 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revert to a missing version: %v", err)
	}
	if _, _, err := s.Mask(ds, img, 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing version: %v", err)
	}
	// Clearing is a version too, and MaskedImages reports the image with its emptiness.
	empty, _ := mask.New(37, 23)
	if v, err := s.SaveMask(ds, img, empty); err != nil || v != 6 {
		t.Fatalf("save empty: %d %v", v, err)
	}
	if _, err := s.SaveMask(ds, "other.png", patterned(4, 4, 9, 1)); err != nil {
		t.Fatal(err)
	}
	newestBy, err := s.MaskedImages(ds)
	if err != nil || !reflect.DeepEqual(newestBy, map[string]int{img: 6, "other.png": 1}) {
		t.Fatalf("masked images %v err %v", newestBy, err)
	}
	// other.png: 16 pixels, every defect pixel class 1 (patterned with one class).
	other, _, _ := s.Mask(ds, "other.png", 0)
	sums, err := s.MaskSummaries(ds)
	want := map[string]MaskSummary{img: {Version: 6}, "other.png": {Version: 1, Pixels: other.Count(), Class: 1}}
	if err != nil || !reflect.DeepEqual(sums, want) || other.Count() == 0 {
		t.Fatalf("summaries %+v err %v, want %+v", sums, err, want)
	}
	if m, err := s.MaskedImages("unknown"); err != nil || len(m) != 0 {
		t.Fatalf("masked images of an unknown dataset: %v %v", m, err)
	}
}

func TestStore_SaveMask_RefusesBadInput(t *testing.T) {
	s, _ := openTemp(t)
	good := patterned(3, 3, 1, 1)
	cases := []struct {
		ds, img string
		m       *mask.Label
	}{
		{"", "a", good},
		{"d", "", good},
		{"d", strings.Repeat("x", maxKey+1), good},
		{"d", "a", nil},
		{"d", "a", &mask.Label{W: 3, H: 3, Pix: make([]uint8, 8)}},
		{"d", "a", &mask.Label{W: 0, H: 3}},
	}
	for i, c := range cases {
		if _, err := s.SaveMask(c.ds, c.img, c.m); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
	if _, err := s.RevertMask("d", "a", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("revert to version 0: %v", err)
	}
}

func TestStore_SaveMask_ConcurrentSavesGetDistinctVersions(t *testing.T) {
	s, _ := openTemp(t)
	var wg sync.WaitGroup
	versions := make(chan int, 40)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				v, err := s.SaveMask("d", "img", patterned(8, 8, int64(g*100+i), 2))
				if err != nil {
					t.Error(err)
					return
				}
				versions <- v
			}
		}()
	}
	wg.Wait()
	close(versions)
	seen := map[int]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d handed out twice", v)
		}
		seen[v] = true
	}
	if len(seen) != 40 {
		t.Fatalf("%d versions", len(seen))
	}
	vs, _ := s.MaskVersions("d", "img")
	if len(vs) != 40 || vs[39].Version != 40 {
		t.Fatalf("history %d entries", len(vs))
	}
}

// The child half of TestStore_SaveMask_SurvivesKill: it saves masks forever and prints an
// acknowledgement after each SaveMask returned, as the server does before telling the browser "saved".
func TestMain(m *testing.M) {
	if p := os.Getenv("RDRE_STORE_CRASH_CHILD"); p != "" {
		os.Exit(crashChild(p))
	}
	os.Exit(m.Run())
}

func crashChild(path string) int {
	s, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		img := fmt.Sprintf("img-%d", i%3)
		v, err := s.SaveMask("crash", img, patterned(64, 48, int64(i), 4))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		fmt.Fprintf(out, "ack %d %s %d\n", i, img, v)
		out.Flush()
	}
}

func TestStore_SaveMask_SurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RDRE_STORE_CRASH_CHILD="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		i, v int
		img  string
	}
	var acks []ack
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "ack" {
			t.Fatalf("child said %q", sc.Text())
		}
		i, _ := strconv.Atoi(f[1])
		v, _ := strconv.Atoi(f[3])
		acks = append(acks, ack{i: i, img: f[2], v: v})
		if len(acks) == 60 {
			// Kill mid-stream: the child is inside its next SaveMask now or about to be.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	// Drain whatever else the child acknowledged before the signal landed: those saves count too.
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 {
			i, _ := strconv.Atoi(f[1])
			v, _ := strconv.Atoi(f[3])
			acks = append(acks, ack{i: i, img: f[2], v: v})
		}
	}
	err = cmd.Wait()
	if len(acks) < 60 {
		t.Fatalf("child stopped after %d acks: %v\n%s", len(acks), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v\n%s", cmd.ProcessState, stderr.String())
	}
	s, err := Open(path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	for _, a := range acks {
		m, v, err := s.Mask("crash", a.img, a.v)
		if err != nil {
			t.Fatalf("acknowledged save %d (%s v%d) lost: %v", a.i, a.img, a.v, err)
		}
		if want := patterned(64, 48, int64(a.i), 4); v != a.v || !bytes.Equal(m.Pix, want.Pix) {
			t.Fatalf("acknowledged save %d (%s v%d) has different content", a.i, a.img, a.v)
		}
	}
	t.Logf("%d acknowledged saves survived SIGKILL", len(acks))
}

func TestStore_CreateClass_ValidatesAndRefusesDuplicates(t *testing.T) {
	s, _ := openTemp(t)
	c, err := s.CreateClass("d", "  Oil stain ", "#A0B0C0")
	if err != nil {
		t.Fatal(err)
	}
	if c.Index != 1 || c.Name != "Oil stain" || c.Color != "#a0b0c0" || c.Source != SourceUser {
		t.Fatalf("class %+v", c)
	}
	c2, err := s.CreateClass("d", "rust", "")
	if err != nil || c2.Index != 2 || c2.Color != PaletteColor(2) {
		t.Fatalf("second class %+v %v", c2, err)
	}
	bad := []struct{ name, color string }{
		{"oil STAIN", "#000000"}, // duplicate, case-insensitive
		{"", "#000000"},
		{"   ", "#000000"},
		{"good", "#000000"},
		{"a\x00b", "#000000"},
		{strings.Repeat("x", MaxClassName+1), "#000000"},
		{"ok", "red"},
		{"ok", "#12345"},
		{"ok", "#1234567"},
	}
	for _, b := range bad {
		if _, err := s.CreateClass("d", b.name, b.color); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateClass(%q, %q): %v, want ErrInvalid", b.name, b.color, err)
		}
	}
	cls, err := s.Classes("d")
	if err != nil || len(cls) != 2 {
		t.Fatalf("classes %+v %v", cls, err)
	}
	if other, err := s.Classes("other"); err != nil || len(other) != 0 {
		t.Fatalf("classes of another dataset: %+v %v", other, err)
	}
}

func TestStore_EnsureClasses_StableIndices(t *testing.T) {
	s, p := openTemp(t)
	if err := s.EnsureClasses("d", []string{"broken_large", "good", "contamination"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateClass("d", "mine", "#112233"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Same kinds again plus a new one, in another order: old indices stay, the new kind takes the next free.
	if err := s.EnsureClasses("d", []string{"contamination", "broken_small", "broken_large"}); err != nil {
		t.Fatal(err)
	}
	cls, err := s.Classes("d")
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.LabelClass{
		{Index: 1, Name: "broken_large", Color: PaletteColor(1), Source: SourceDataset},
		{Index: 2, Name: "contamination", Color: PaletteColor(2), Source: SourceDataset},
		{Index: 3, Name: "mine", Color: "#112233", Source: SourceUser},
		{Index: 4, Name: "broken_small", Color: PaletteColor(4), Source: SourceDataset},
	}
	if !reflect.DeepEqual(cls, want) {
		t.Fatalf("classes\n got %+v\nwant %+v", cls, want)
	}
}

func TestStore_Records_JobsModelsResults(t *testing.T) {
	s, _ := openTemp(t)
	type job struct {
		State string `json:"state"`
		N     int    `json:"n"`
	}
	if err := s.PutJob("j1", job{"running", 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutJob("j1", job{"done", 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutJob("j0", job{"queued", 0}); err != nil {
		t.Fatal(err)
	}
	var j job
	if err := s.Job("j1", &j); err != nil || j != (job{"done", 2}) {
		t.Fatalf("job %+v %v", j, err)
	}
	if err := s.Job("nope", &j); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
	var ids []string
	if err := s.Jobs(func(id string, raw []byte) error { ids = append(ids, id); return nil }); err != nil || !reflect.DeepEqual(ids, []string{"j0", "j1"}) {
		t.Fatalf("jobs %v %v", ids, err)
	}
	stop := errors.New("stop")
	if err := s.Jobs(func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error not returned: %v", err)
	}
	if err := s.PutModel("abc", map[string]int{"steps": 1500}); err != nil {
		t.Fatal(err)
	}
	var models []string
	if err := s.Models(func(sha string, raw []byte) error { models = append(models, sha+"="+string(raw)); return nil }); err != nil || !reflect.DeepEqual(models, []string{`abc={"steps":1500}`}) {
		t.Fatalf("models %v %v", models, err)
	}
	if err := s.PutResult("j1", []byte(`{"auroc":0.99}`)); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Result("j1"); err != nil || string(r) != `{"auroc":0.99}` {
		t.Fatalf("result %s %v", r, err)
	}
	if err := s.PutMap("j1", "a.png", 2, 1, []float32{0.5, 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteJob("j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Result("j1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("result after delete: %v", err)
	}
	if keys, err := s.MapKeys("j1"); err != nil || len(keys) != 0 {
		t.Fatalf("maps after delete: %v %v", keys, err)
	}
	if err := s.PutJob("", job{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty job id: %v", err)
	}
	if err := s.PutJob("x", func() {}); err == nil {
		t.Fatal("unencodable job accepted")
	}
}

func TestStore_PutMap_Float16RoundTrip(t *testing.T) {
	s, _ := openTemp(t)
	const w, h = 31, 17
	r := rand.New(rand.NewSource(3))
	m := make([]float32, w*h)
	for i := range m {
		m[i] = r.Float32() * 3
	}
	m[0], m[1], m[2], m[3] = 0, 1, float32(math.Inf(1)), 1e-7
	if err := s.PutMap("job", "b.png", w, h, m); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMap("job", "a.png", 1, 1, []float32{2}); err != nil {
		t.Fatal(err)
	}
	got, gw, gh, err := s.Map("job", "b.png")
	if err != nil || gw != w || gh != h || len(got) != w*h {
		t.Fatalf("map %dx%d %v", gw, gh, err)
	}
	for i := range m {
		if math.IsInf(float64(m[i]), 0) {
			if !math.IsInf(float64(got[i]), 1) {
				t.Fatalf("value %d: Inf became %v", i, got[i])
			}
			continue
		}
		// Relative error bound of binary16 for normal values; absolute 2^-25 for subnormal ones.
		if d := math.Abs(float64(got[i] - m[i])); d > math.Max(math.Abs(float64(m[i]))/2048, 1.0/(1<<25)) {
			t.Fatalf("value %d: %v stored as %v", i, m[i], got[i])
		}
	}
	if got[1] != 1 || got[0] != 0 {
		t.Fatalf("exact values changed: %v %v", got[0], got[1])
	}
	keys, err := s.MapKeys("job")
	if err != nil || !reflect.DeepEqual(keys, []string{"a.png", "b.png"}) {
		t.Fatalf("keys %v %v", keys, err)
	}
	if _, _, _, err := s.Map("job", "c.png"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing map: %v", err)
	}
	if _, _, _, err := s.Map("nojob", "a.png"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}
	if err := s.PutMap("job", "x", 2, 2, []float32{1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short map: %v", err)
	}
}

// Every binary16 value survives a round trip through float32, and every float32 goes to the nearest
// binary16 (ties to even): checked against neighbours rather than a second implementation.
func TestFloat16_Conversion_NearestEven(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := Float32(uint16(h))
		if math.IsNaN(float64(f)) {
			if g := Float16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, g)
			}
			continue
		}
		if g := Float16(f); g != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, g)
		}
	}
	r := rand.New(rand.NewSource(5))
	for i := 0; i < 200000; i++ {
		// Random bit patterns across the whole finite range of interest (|x| < 70000).
		x := math.Float32frombits(r.Uint32())
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || math.Abs(float64(x)) >= 65520 {
			continue
		}
		h := Float16(x)
		got := float64(Float32(h))
		d := math.Abs(got - float64(x))
		for _, nb := range []uint16{h + 1, h - 1} {
			if nb&0x7c00 == 0x7c00 || (h&0x7fff == 0 && nb == h-1) {
				continue
			}
			dn := math.Abs(float64(Float32(nb)) - float64(x))
			if dn < d || (dn == d && h&1 == 1) {
				t.Fatalf("%v -> %#04x (%v), but neighbour %#04x (%v) is nearer or the even tie", x, h, got, nb, Float32(nb))
			}
		}
	}
	if Float16(65520) != 0x7c00 || Float16(-1e9) != 0xfc00 {
		t.Fatal("overflow must give Inf")
	}
}

func TestDefaultPath_XDGDataHome(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/x/data")
	if got := DefaultPath(); got != filepath.Join("/x/data", "rdre-studio", "workspace.db") {
		t.Fatalf("DefaultPath %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "relative") // the XDG spec says to ignore relative paths
	if got := DefaultPath(); strings.HasPrefix(got, "relative") {
		t.Fatalf("DefaultPath %s uses a relative XDG_DATA_HOME", got)
	}
}

func TestStore_Open_GarbageFileIsError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ws.db")
	if err := os.WriteFile(p, bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); err == nil {
		t.Fatal("a garbage file opened as a workspace")
	}
}

func BenchmarkStore_SaveMask_1024(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "ws.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m, _ := mask.New(1024, 1024)
	for y := 400; y < 600; y++ {
		for x := 300; x < 700; x++ {
			m.Pix[y*1024+x] = 1
		}
	}
	for b.Loop() {
		if _, err := s.SaveMask("d", "img", m); err != nil {
			b.Fatal(err)
		}
	}
}

// The majority class is the class with most pixels, ties to the lower index; format 1 records still read.
func TestStore_MaskSummaries_MajorityClassAndOldRecords(t *testing.T) {
	s, _ := openTemp(t)
	m := &mask.Label{W: 4, H: 2, Pix: []uint8{0, 3, 3, 5, 5, 0, 2, 0}}
	if _, err := s.SaveMask("d", "tie", m); err != nil {
		t.Fatal(err)
	}
	m2 := &mask.Label{W: 4, H: 2, Pix: []uint8{7, 3, 7, 5, 7, 0, 2, 0}}
	if _, err := s.SaveMask("d", "seven", m2); err != nil {
		t.Fatal(err)
	}
	// An early-build record: format 1, no class byte.
	old := patterned(6, 5, 11, 2)
	rec := encodeMaskRecord(old, time.Unix(1700000000, 0))
	rec = append([]byte{1}, append(rec[1:13], rec[14:]...)...)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := imageBucket(tx, "d", "old", true)
		if err != nil {
			return err
		}
		_, err = putVersion(b, rec)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sums, err := s.MaskSummaries("d")
	if err != nil {
		t.Fatal(err)
	}
	if sums["tie"].Class != 3 || sums["tie"].Pixels != 5 || sums["seven"].Class != 7 || sums["old"].Class != 0 || sums["old"].Pixels != old.Count() {
		t.Fatalf("summaries %+v", sums)
	}
	got, _, err := s.Mask("d", "old", 0)
	if err != nil || !bytes.Equal(got.Pix, old.Pix) {
		t.Fatalf("format 1 record: %v", err)
	}
	vs, err := s.MaskVersions("d", "old")
	if err != nil || len(vs) != 1 || vs[0].SavedAt != "2023-11-14T22:13:20Z" {
		t.Fatalf("format 1 history %+v %v", vs, err)
	}
}

func TestStore_SaveMasks_BatchAllOrNothing(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.SaveMask("d", "a", patterned(4, 4, 1, 1)); err != nil {
		t.Fatal(err)
	}
	batch := map[string]*mask.Label{"a": patterned(4, 4, 2, 2), "b": patterned(5, 3, 3, 2)}
	vs, err := s.SaveMasks("d", batch)
	if err != nil || !reflect.DeepEqual(vs, map[string]int{"a": 2, "b": 1}) {
		t.Fatalf("versions %v %v", vs, err)
	}
	for img, want := range batch {
		got, _, err := s.Mask("d", img, 0)
		if err != nil || !bytes.Equal(got.Pix, want.Pix) {
			t.Fatalf("%s: %v", img, err)
		}
	}
	// One bad mask refuses the whole batch.
	if _, err := s.SaveMasks("d", map[string]*mask.Label{"a": patterned(4, 4, 5, 1), "c": {W: 2, H: 2}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad batch: %v", err)
	}
	if got, _ := s.MaskedImages("d"); !reflect.DeepEqual(got, map[string]int{"a": 2, "b": 1}) {
		t.Fatalf("a refused batch stored something: %v", got)
	}
}

func TestStore_PutModelMap_ExactAfterReopen(t *testing.T) {
	s, path := openTemp(t)
	raw := make([]float32, 16*16)
	for i := range raw {
		raw[i] = float32(i%7)*0.123456789 + 1e-7*float32(i)
	}
	if err := s.PutModelMap("job1", "test/good/000.png", 16, 37, 23, raw); err != nil {
		t.Fatal(err)
	}
	if err := s.PutModelMap("job1", "x.png", 16, 37, 23, raw[:10]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short map: got %v, want ErrInvalid", err)
	}
	want, err := resample.MapToImage(raw, 16, 37, 23)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, w, h, err := s2.Map("job1", "test/good/000.png")
	if err != nil || w != 37 || h != 23 {
		t.Fatalf("map: %dx%d, %v", w, h, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("value %d: %v, want exactly %v", i, got[i], want[i])
		}
	}
}
